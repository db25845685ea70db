"""KIE.ai: wire formats, families, the client and the simulator. Knows nothing of our HTTP."""
