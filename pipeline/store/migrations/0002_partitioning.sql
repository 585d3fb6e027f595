-- Range-partition management shared by audit_logs, telemetry and location_history.
-- The worker calls eriop_ensure_partition() before writing rows for a range it has
-- not seen, and the maintenance job keeps partitions ahead of the clock.

CREATE TABLE IF NOT EXISTS eriop_partition_policies (
    parent          TEXT PRIMARY KEY,
    -- '1 month' or '7 days'; month partitions start on the 1st, week partitions on Monday
    partition_span  INTERVAL NOT NULL,
    -- partitions entirely older than this are archived or dropped (NULL: kept)
    retention       INTERVAL,
    -- where expired rows go before the partition is dropped (NULL: dropped)
    archive_table   TEXT,
    -- TimescaleDB manages this table itself (hypertable): nothing to do here
    managed_by_timescaledb BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE OR REPLACE FUNCTION eriop_partition_bounds(span INTERVAL, ts TIMESTAMPTZ)
RETURNS TABLE (lo TIMESTAMPTZ, hi TIMESTAMPTZ)
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN span = INTERVAL '1 month'
                THEN date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                ELSE date_trunc('week', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' END,
           CASE WHEN span = INTERVAL '1 month'
                THEN (date_trunc('month', ts AT TIME ZONE 'UTC') + INTERVAL '1 month') AT TIME ZONE 'UTC'
                ELSE (date_trunc('week', ts AT TIME ZONE 'UTC') + INTERVAL '7 days') AT TIME ZONE 'UTC' END
$$;

-- Creates the partition of `parent` that holds `ts` if it does not exist yet.
-- Returns the partition's name. Safe under concurrency (advisory lock per parent).
CREATE OR REPLACE FUNCTION eriop_ensure_partition(parent TEXT, ts TIMESTAMPTZ)
RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
    pol   eriop_partition_policies%ROWTYPE;
    b     RECORD;
    pname TEXT;
BEGIN
    SELECT * INTO pol FROM eriop_partition_policies p WHERE p.parent = eriop_ensure_partition.parent;
    IF NOT FOUND OR pol.managed_by_timescaledb THEN
        RETURN NULL;
    END IF;
    SELECT * INTO b FROM eriop_partition_bounds(pol.partition_span, ts);
    pname := format('%s_p%s', parent, to_char(b.lo AT TIME ZONE 'UTC', 'YYYYMMDD'));
    IF to_regclass(pname) IS NOT NULL THEN
        RETURN pname;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('eriop_partition:' || parent));
    IF to_regclass(pname) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       pname, parent, b.lo, b.hi);
    END IF;
    RETURN pname;
END
$$;

-- Partitions from `back` before now to `ahead` after now, for every managed parent.
CREATE OR REPLACE FUNCTION eriop_ensure_partitions_around_now(back INTERVAL, ahead INTERVAL)
RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    pol  eriop_partition_policies%ROWTYPE;
    t    TIMESTAMPTZ;
    n    INTEGER := 0;
BEGIN
    FOR pol IN SELECT * FROM eriop_partition_policies WHERE NOT managed_by_timescaledb LOOP
        t := now() - back;
        WHILE t <= now() + ahead LOOP
            PERFORM eriop_ensure_partition(pol.parent, t);
            n := n + 1;
            t := t + CASE WHEN pol.partition_span = INTERVAL '1 month'
                          THEN INTERVAL '27 days' ELSE INTERVAL '6 days' END;
        END LOOP;
    END LOOP;
    RETURN n;
END
$$;

-- Audit logs: immutable trail, partitioned by month. The partition key must be
-- part of the primary key, so it is (id, timestamp) rather than id alone.
CREATE TABLE IF NOT EXISTS audit_logs (
    id              BIGSERIAL,
    timestamp       TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    user_id         UUID REFERENCES users(id),
    session_id      VARCHAR(255),
    action          VARCHAR(100) NOT NULL,
    resource_type   VARCHAR(100) NOT NULL,
    resource_id     VARCHAR(255),
    agency_id       UUID REFERENCES agencies(id),
    ip_address      INET,
    user_agent      VARCHAR(500),
    request_id      VARCHAR(100),
    old_values      JSONB,
    new_values      JSONB,
    metadata        JSONB NOT NULL DEFAULT '{}',
    CONSTRAINT audit_logs_action_check CHECK (action IS NOT NULL),
    PRIMARY KEY (id, timestamp)
) PARTITION BY RANGE (timestamp);

CREATE INDEX IF NOT EXISTS idx_audit_logs_timestamp ON audit_logs(timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_audit_logs_user ON audit_logs(user_id);
CREATE INDEX IF NOT EXISTS idx_audit_logs_action ON audit_logs(action);
CREATE INDEX IF NOT EXISTS idx_audit_logs_resource ON audit_logs(resource_type, resource_id);
CREATE INDEX IF NOT EXISTS idx_audit_logs_agency ON audit_logs(agency_id);

-- Append-only: the database itself refuses UPDATE, DELETE and TRUNCATE. Archival
-- moves whole expired partitions (copy, detach, drop), which these triggers allow.
CREATE OR REPLACE FUNCTION eriop_audit_logs_immutable()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS audit_logs_no_update_delete ON audit_logs;
CREATE TRIGGER audit_logs_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION eriop_audit_logs_immutable();
DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs;
CREATE TRIGGER audit_logs_no_truncate
    BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION eriop_audit_logs_immutable();

-- Audit logs older than a year move here; kept 7 years in total. Also append-only.
CREATE TABLE IF NOT EXISTS audit_logs_archive (
    id              BIGINT NOT NULL,
    timestamp       TIMESTAMP WITH TIME ZONE NOT NULL,
    user_id         UUID,
    session_id      VARCHAR(255),
    action          VARCHAR(100) NOT NULL,
    resource_type   VARCHAR(100) NOT NULL,
    resource_id     VARCHAR(255),
    agency_id       UUID,
    ip_address      INET,
    user_agent      VARCHAR(500),
    request_id      VARCHAR(100),
    old_values      JSONB,
    new_values      JSONB,
    metadata        JSONB NOT NULL DEFAULT '{}',
    archived_at     TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (id, timestamp)
);
CREATE INDEX IF NOT EXISTS idx_audit_logs_archive_timestamp ON audit_logs_archive(timestamp DESC);
DROP TRIGGER IF EXISTS audit_logs_archive_no_update ON audit_logs_archive;
CREATE TRIGGER audit_logs_archive_no_update
    BEFORE UPDATE ON audit_logs_archive
    FOR EACH ROW EXECUTE FUNCTION eriop_audit_logs_immutable();

INSERT INTO eriop_partition_policies (parent, partition_span, retention, archive_table)
VALUES ('audit_logs', INTERVAL '1 month', INTERVAL '1 year', 'audit_logs_archive')
ON CONFLICT (parent) DO NOTHING;
