"""The last hop: PostgreSQL, Redis and Kafka writers behind small interfaces."""
