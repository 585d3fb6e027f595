-- Line supervision of alarm accounts (docs/operations.md, "Line supervision").
-- Every frame a DC-09 receiver accepts is a check-in for its account. The state
-- lives here, shared by every receiver (main and backup paths), so that a
-- restart forgets nothing and an outage is raised once whichever receiver sees it.

CREATE TABLE IF NOT EXISTS line_supervision (
    account        TEXT PRIMARY KEY,
    -- the L field of the latest check-in as sent (NULL: the frame had none)
    line           TEXT,
    last_check_in  TIMESTAMPTZ NOT NULL,
    -- set while the account is in communication failure: the last check-in
    -- before the silence, which names the outage (its alert's external_id)
    outage_since   TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_line_supervision_failed
    ON line_supervision (account) WHERE outage_since IS NOT NULL;

-- Changes not yet delivered: written in the transaction that changes the state,
-- produced to alerts.alarm and published on Redis, then deleted.
CREATE TABLE IF NOT EXISTS line_supervision_events (
    id          BIGSERIAL PRIMARY KEY,
    account     TEXT NOT NULL,
    line        TEXT,
    state       TEXT NOT NULL CHECK (state IN ('failed', 'restored')),
    since       TIMESTAMPTZ NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    produced    BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON line_supervision TO eriop_ingest;
GRANT SELECT, INSERT, UPDATE, DELETE ON line_supervision_events TO eriop_ingest;
GRANT USAGE ON SEQUENCE line_supervision_events_id_seq TO eriop_ingest;
