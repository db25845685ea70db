"""Measured health of every dependency, in one shape."""
