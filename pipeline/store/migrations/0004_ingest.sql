-- Tables of the ingest tier itself: consumed offsets kept with the rows they
-- produced, the alert outbox, geofences and jurisdictions, device last-seen.

-- Kafka positions, written in the same transaction as the rows, so that a
-- crash at any instant neither loses nor double-counts a record.
CREATE TABLE IF NOT EXISTS ingest_offsets (
    group_id        TEXT NOT NULL,
    topic           TEXT NOT NULL,
    partition       INTEGER NOT NULL,
    next_offset     BIGINT NOT NULL,
    updated_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (group_id, topic, partition)
);

-- One entry per newly stored alert, committed with it; the relay publishes to
-- Redis and alerts.normalized and then deletes it (at-least-once, never a gap).
CREATE TABLE IF NOT EXISTS alert_outbox (
    id              BIGSERIAL PRIMARY KEY,
    alert_id        UUID NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    payload         JSONB NOT NULL,
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

-- Jurisdictions and geofences: polygons that enrich alerts with an agency and
-- produce enter/leave events for moving resources.
CREATE TABLE IF NOT EXISTS geofences (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(255) NOT NULL,
    kind            VARCHAR(20) NOT NULL DEFAULT 'geofence',
    agency_id       UUID REFERENCES agencies(id),
    area            GEOGRAPHY(MULTIPOLYGON, 4326) NOT NULL,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    metadata        JSONB NOT NULL DEFAULT '{}',
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    CONSTRAINT geofences_kind_check CHECK (kind IN ('geofence', 'jurisdiction'))
);
CREATE INDEX IF NOT EXISTS idx_geofences_area ON geofences USING GIST(area);
CREATE INDEX IF NOT EXISTS idx_geofences_updated ON geofences(updated_at DESC);

-- Last time each telemetry device was heard from.
CREATE TABLE IF NOT EXISTS device_last_seen (
    device_id       UUID PRIMARY KEY,
    device_type     VARCHAR(50) NOT NULL,
    last_seen       TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
