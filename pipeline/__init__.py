"""ERIOP ingest pipeline: stages, sinks, settings, metrics. No Faust import here."""

__version__ = "0.1.0"
