"""Composition root, process supervision, the HTTP server for metrics and health."""
