"""Kafka outputs: the dead-letter topic."""
