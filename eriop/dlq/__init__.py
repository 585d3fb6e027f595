"""``eriop dlq``: dead letters listed by error code and replayed after a fix."""
