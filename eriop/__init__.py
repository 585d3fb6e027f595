"""The ``eriop`` command line and its tools: bench, dev stack, simulator, watch, dlq."""
