"""One flow per stream: decode, stage, store; retry, bisection, dead letters, accounting."""
