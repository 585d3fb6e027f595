"""Connections to the services (Kafka, PostgreSQL); their errors are translated here."""
