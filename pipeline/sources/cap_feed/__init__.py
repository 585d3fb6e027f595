"""The CAP front door (``eriop cap-poller``): polls Atom/RSS feeds and CAP URLs.

``fetch`` does HTTP (conditional GET, deadline, size limit), ``feeds`` reads
indexes and documents (hardened XML), ``state`` keeps what was sent in
PostgreSQL, ``poller`` runs one poll of one source, ``service`` the loops.
New documents go unchanged to ``alerts.cap`` keyed by sender (docs/formats.md 3).
"""
