-- Partitions around now: step exactly one partition span at a time, so the
-- partition holding now + ahead is always created (a fixed 6- or 27-day step
-- could end one partition short).
CREATE OR REPLACE FUNCTION eriop_ensure_partitions_around_now(back INTERVAL, ahead INTERVAL)
RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    pol  eriop_partition_policies%ROWTYPE;
    b    RECORD;
    t    TIMESTAMPTZ;
    n    INTEGER := 0;
BEGIN
    FOR pol IN SELECT * FROM eriop_partition_policies WHERE NOT managed_by_timescaledb LOOP
        t := now() - back;
        LOOP
            PERFORM eriop_ensure_partition(pol.parent, t);
            n := n + 1;
            SELECT * INTO b FROM eriop_partition_bounds(pol.partition_span, t);
            EXIT WHEN b.hi > now() + ahead;
            t := b.hi;
        END LOOP;
    END LOOP;
    RETURN n;
END
$$;
