"""KIE callback intake: verify, store before acknowledging, apply, and never lose one."""
