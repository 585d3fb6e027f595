"""Data definitions of ERIOP ingest: inbound formats, canonical records, dead letters. No I/O."""
