"""Sensor telemetry: the simple format and SenML."""
