-- Time-series tables. With the timescaledb extension they become hypertables
-- with the design's compression and retention policies; without it they are
-- natively range-partitioned by week, and the worker's retention job drops
-- partitions past the same retention. Unique keys include the time column, as
-- both hypertables and native partitions require; they make replays idempotent.

DO $$
DECLARE
    has_timescale BOOLEAN := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb');
    suffix TEXT := CASE WHEN has_timescale THEN '' ELSE ' PARTITION BY RANGE (time)' END;
BEGIN
    IF has_timescale THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    END IF;

    EXECUTE $t$
    CREATE TABLE IF NOT EXISTS telemetry (
        time            TIMESTAMP WITH TIME ZONE NOT NULL,
        device_id       UUID NOT NULL,
        device_type     VARCHAR(50) NOT NULL,
        metric_name     VARCHAR(100) NOT NULL,
        metric_value    DOUBLE PRECISION,
        metric_text     VARCHAR(255),
        location        GEOGRAPHY(POINT, 4326),
        metadata        JSONB NOT NULL DEFAULT '{}',
        CONSTRAINT telemetry_device_metric_time_key UNIQUE (device_id, metric_name, time)
    )$t$ || suffix;

    EXECUTE $t$
    CREATE TABLE IF NOT EXISTS location_history (
        time            TIMESTAMP WITH TIME ZONE NOT NULL,
        resource_id     UUID NOT NULL,
        resource_type   VARCHAR(30) NOT NULL,
        location        GEOGRAPHY(POINT, 4326) NOT NULL,
        speed           DOUBLE PRECISION,
        heading         DOUBLE PRECISION,
        accuracy        DOUBLE PRECISION,
        source          VARCHAR(50) NOT NULL DEFAULT 'gps',
        metadata        JSONB NOT NULL DEFAULT '{}',
        CONSTRAINT location_history_resource_time_key UNIQUE (resource_id, time)
    )$t$ || suffix;

    IF has_timescale THEN
        PERFORM create_hypertable('telemetry', 'time', if_not_exists => TRUE);
        PERFORM create_hypertable('location_history', 'time', if_not_exists => TRUE);
        EXECUTE 'ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = ''device_id'', timescaledb.compress_orderby = ''metric_name, time DESC'')';
        EXECUTE 'ALTER TABLE location_history SET (timescaledb.compress, timescaledb.compress_segmentby = ''resource_id'', timescaledb.compress_orderby = ''time DESC'')';
        PERFORM add_compression_policy('telemetry', INTERVAL '7 days', if_not_exists => TRUE);
        PERFORM add_retention_policy('telemetry', INTERVAL '2 years', if_not_exists => TRUE);
        PERFORM add_compression_policy('location_history', INTERVAL '7 days', if_not_exists => TRUE);
        PERFORM add_retention_policy('location_history', INTERVAL '1 year', if_not_exists => TRUE);
    END IF;

    INSERT INTO eriop_partition_policies (parent, partition_span, retention, archive_table, managed_by_timescaledb)
    VALUES ('telemetry', INTERVAL '7 days', INTERVAL '2 years', NULL, has_timescale),
           ('location_history', INTERVAL '7 days', INTERVAL '1 year', NULL, has_timescale)
    ON CONFLICT (parent) DO NOTHING;
END
$$;

CREATE INDEX IF NOT EXISTS idx_telemetry_device ON telemetry(device_id, time DESC);
CREATE INDEX IF NOT EXISTS idx_telemetry_metric ON telemetry(metric_name, time DESC);
CREATE INDEX IF NOT EXISTS idx_telemetry_location ON telemetry USING GIST(location);

CREATE INDEX IF NOT EXISTS idx_location_resource ON location_history(resource_id, time DESC);
CREATE INDEX IF NOT EXISTS idx_location_geo ON location_history USING GIST(location);

-- Partitions for the last two weeks and the next four exist from the start; the
-- worker keeps them ahead and creates older ones on demand.
SELECT eriop_ensure_partitions_around_now(INTERVAL '14 days', INTERVAL '28 days');
