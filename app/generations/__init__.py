"""Generations: what users ask for, from the request to the result (service, public shapes,
submitter, poller)."""
