"""``eriop bench``: throughput, latency, memory and CPU by part on the embedded stack."""
