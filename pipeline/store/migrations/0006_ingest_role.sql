-- The least-privilege role of the ingest worker. It is NOLOGIN: deployments grant
-- it to their login user (GRANT eriop_ingest TO eriop_worker). It may read the
-- inventory, insert what ingest produces, update only what restores, cancels and
-- live positions change, and append to audit_logs; it owns nothing, so it cannot
-- drop or alter tables. Partitions are created through a SECURITY DEFINER function.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eriop_ingest') THEN
        CREATE ROLE eriop_ingest NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO eriop_ingest;
GRANT SELECT ON agencies, resources, geofences, eriop_partition_policies,
                eriop_schema_migrations TO eriop_ingest;
GRANT SELECT, INSERT ON alerts TO eriop_ingest;
GRANT UPDATE (metadata, status) ON alerts TO eriop_ingest;
GRANT UPDATE (current_location, updated_at) ON resources TO eriop_ingest;
GRANT SELECT, INSERT ON telemetry, location_history TO eriop_ingest;
-- UPDATE only because the relay claims entries with SELECT ... FOR UPDATE
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_outbox TO eriop_ingest;
GRANT SELECT, INSERT, UPDATE ON ingest_offsets, device_last_seen TO eriop_ingest;
GRANT INSERT ON audit_logs TO eriop_ingest;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO eriop_ingest;

ALTER FUNCTION eriop_ensure_partition(TEXT, TIMESTAMPTZ) SECURITY DEFINER;
ALTER FUNCTION eriop_ensure_partition(TEXT, TIMESTAMPTZ) SET search_path = public, pg_temp;
ALTER FUNCTION eriop_ensure_partitions_around_now(INTERVAL, INTERVAL) SECURITY DEFINER;
ALTER FUNCTION eriop_ensure_partitions_around_now(INTERVAL, INTERVAL) SET search_path = public, pg_temp;
REVOKE ALL ON FUNCTION eriop_ensure_partition(TEXT, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION eriop_ensure_partitions_around_now(INTERVAL, INTERVAL) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eriop_ensure_partition(TEXT, TIMESTAMPTZ) TO eriop_ingest;
GRANT EXECUTE ON FUNCTION eriop_ensure_partitions_around_now(INTERVAL, INTERVAL) TO eriop_ingest;
