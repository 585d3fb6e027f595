-- Data retention (docs/database-design.md, "Data Retention"; docs/operations.md).
--
-- The worker's retention job calls these functions. The ones that remove data run
-- with their owner's rights (SECURITY DEFINER), so the least-privilege ingest role
-- can run the job without owning, altering or deleting from any table itself.
-- Whatever time a caller passes, the cut-off is never later than the database
-- clock: a caller can keep more, never remove more.

-- The exclusive upper bound of a range partition; NULL for DEFAULT or MAXVALUE.
CREATE OR REPLACE FUNCTION eriop_partition_upper_bound(part REGCLASS)
RETURNS TIMESTAMPTZ
LANGUAGE sql STABLE
-- the bound is printed and read back in the same, unambiguous style
SET datestyle = 'ISO, YMD'
AS $$
    SELECT ((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']*)''\)'))[1])::timestamptz
    FROM pg_class c
    WHERE c.oid = part
$$;

-- Partitions whose whole range lies before `p_now - retention`, oldest first.
CREATE OR REPLACE FUNCTION eriop_expired_partitions(p_now TIMESTAMPTZ)
RETURNS TABLE (parent TEXT, partition_name TEXT, upper_bound TIMESTAMPTZ, archive_table TEXT)
LANGUAGE sql STABLE AS $$
    SELECT p.parent, c.oid::regclass::text, b.ub, p.archive_table
    FROM eriop_partition_policies p
    JOIN pg_inherits i ON i.inhparent = to_regclass(p.parent)
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT eriop_partition_upper_bound(c.oid) AS ub) b
    WHERE p.retention IS NOT NULL
      AND NOT p.managed_by_timescaledb
      AND b.ub IS NOT NULL
      AND b.ub <= LEAST(p_now, now()) - p.retention
    ORDER BY p.parent, b.ub
$$;

-- Copies an expired partition into its parent's archive table (when the policy names
-- one), then detaches and drops it, in the caller's transaction. Returns one row: the
-- rows the partition held and the rows added to the archive. A partition that is gone
-- already or not yet expired is left alone and no row is returned, so a repeated run
-- is harmless.
CREATE OR REPLACE FUNCTION eriop_retire_partition(p_parent TEXT, p_partition TEXT, p_now TIMESTAMPTZ)
RETURNS TABLE (row_count BIGINT, archived BIGINT)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
-- never queue for long behind ingest: the next run tries again
SET lock_timeout = '10s'
AS $$
DECLARE
    part    REGCLASS := to_regclass(p_partition);
    target  RECORD;
    cols    TEXT;
BEGIN
    row_count := 0;
    archived := 0;
    IF part IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO target FROM eriop_expired_partitions(p_now) e
    WHERE e.parent = p_parent AND e.partition_name = part::text;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- no row may arrive in the partition between the copy and the drop
    EXECUTE format('LOCK TABLE %s IN SHARE MODE', part);
    EXECUTE format('SELECT count(*) FROM %s', part) INTO row_count;
    IF target.archive_table IS NOT NULL THEN
        -- the columns both tables have, by name (the archive adds archived_at)
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
        FROM pg_attribute a
        WHERE a.attrelid = to_regclass(target.archive_table) AND a.attnum > 0 AND NOT a.attisdropped
          AND EXISTS (SELECT 1 FROM pg_attribute b
                      WHERE b.attrelid = to_regclass(p_parent) AND b.attname = a.attname
                        AND b.attnum > 0 AND NOT b.attisdropped);
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT DO NOTHING',
                       to_regclass(target.archive_table), cols, cols, part);
        GET DIAGNOSTICS archived = ROW_COUNT;
    END IF;
    EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', to_regclass(p_parent), part);
    EXECUTE format('DROP TABLE %s', part);
    RETURN NEXT;
END
$$;

-- Messages older than two years move to messages_archive. A message that a newer
-- message still replies to (directly or up a reply chain) stays until that reply
-- expires too, so no reply ever points at a missing message. Returns the rows moved.
CREATE OR REPLACE FUNCTION eriop_archive_messages(p_now TIMESTAMPTZ)
RETURNS BIGINT
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
SET lock_timeout = '10s'
AS $$
DECLARE
    cutoff TIMESTAMPTZ := LEAST(p_now, now()) - INTERVAL '2 years';
    moved_rows BIGINT;
BEGIN
    WITH RECURSIVE pinned (id) AS (
        SELECT m.reply_to FROM messages m
        WHERE m.created_at >= cutoff AND m.reply_to IS NOT NULL
        UNION
        SELECT m.reply_to FROM messages m JOIN pinned p ON m.id = p.id
        WHERE m.reply_to IS NOT NULL
    ), moved AS (
        DELETE FROM messages m
        WHERE m.created_at < cutoff
          AND NOT EXISTS (SELECT 1 FROM pinned p WHERE p.id = m.id)
        RETURNING m.*
    )
    INSERT INTO messages_archive (id, channel_id, sender_id, message_type, content,
                                  content_encrypted, attachments, reply_to, status, priority,
                                  metadata, created_at, edited_at, deleted_at)
    SELECT id, channel_id, sender_id, message_type, content, content_encrypted, attachments,
           reply_to, status, priority, metadata, created_at, edited_at, deleted_at
    FROM moved
    ON CONFLICT (id) DO NOTHING;
    GET DIAGNOSTICS moved_rows = ROW_COUNT;
    RETURN moved_rows;
END
$$;

-- Audit logs are kept seven years in all: archived rows past that are deleted.
CREATE OR REPLACE FUNCTION eriop_purge_audit_archive(p_now TIMESTAMPTZ)
RETURNS BIGINT
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
SET lock_timeout = '10s'
AS $$
DECLARE
    purged BIGINT;
BEGIN
    DELETE FROM audit_logs_archive WHERE timestamp < LEAST(p_now, now()) - INTERVAL '7 years';
    GET DIAGNOSTICS purged = ROW_COUNT;
    RETURN purged;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eriop_ingest') THEN
        CREATE ROLE eriop_ingest NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION eriop_retire_partition(TEXT, TEXT, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION eriop_archive_messages(TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION eriop_purge_audit_archive(TIMESTAMPTZ) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eriop_retire_partition(TEXT, TEXT, TIMESTAMPTZ) TO eriop_ingest;
GRANT EXECUTE ON FUNCTION eriop_archive_messages(TIMESTAMPTZ) TO eriop_ingest;
GRANT EXECUTE ON FUNCTION eriop_purge_audit_archive(TIMESTAMPTZ) TO eriop_ingest;
