"""The worker process and its alert agent: thin adapters onto :mod:`pipeline`."""
