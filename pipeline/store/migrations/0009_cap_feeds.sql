-- What eriop cap-poller has already taken from each CAP source, so a restart
-- neither sends a feed again nor misses what appeared meanwhile.
--
-- cap_feed_sources: per configured source (its name), the HTTP validators of the
-- last index that was fully processed, and when a poll last succeeded or failed.
-- cap_feed_entries: per source and entry id, the version (Atom updated / RSS pubDate,
-- plus the CAP sender,identifier,sent for embedded documents) last produced to
-- alerts.cap. An entry whose version changes is fetched again. Entries that have
-- left the feed are forgotten after cap_feeds.forget_after_days (last_seen_at).

CREATE TABLE IF NOT EXISTS cap_feed_sources (
    source          TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    etag            TEXT,
    last_modified   TEXT,
    last_success_at TIMESTAMPTZ,
    last_failure_at TIMESTAMPTZ,
    last_error      TEXT,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS cap_feed_entries (
    source         TEXT NOT NULL,
    entry_id       TEXT NOT NULL,
    version        TEXT NOT NULL,
    cap_sender     TEXT,
    cap_identifier TEXT,
    forwarded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, entry_id)
);

CREATE INDEX IF NOT EXISTS cap_feed_entries_last_seen ON cap_feed_entries (source, last_seen_at);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eriop_ingest') THEN
        CREATE ROLE eriop_ingest NOLOGIN;
    END IF;
END
$$;

GRANT SELECT, INSERT, UPDATE ON cap_feed_sources TO eriop_ingest;
GRANT SELECT, INSERT, UPDATE, DELETE ON cap_feed_entries TO eriop_ingest;
