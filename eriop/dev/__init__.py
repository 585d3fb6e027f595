"""``eriop dev``: embedded broker, PostgreSQL, Redis, worker and simulated devices."""
