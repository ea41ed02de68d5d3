-- An audit append reads the chain's head under the append lock. Locking
-- and reading were two round trips, because a statement's snapshot is
-- taken before any lock it then waits for. Inside a VOLATILE function each
-- statement takes a fresh snapshot (READ COMMITTED), so one call can lock
-- and then read the head the lock protects, and the owner's sealed data
-- key beside it (which needs no lock). Round trips are most of the CPU a
-- login costs beside its hash.
CREATE FUNCTION authd_audit_lock_head(owner uuid)
RETURNS TABLE (head_seq bigint, head_hash bytea, occurred_at timestamptz, owner_key bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('authd.audit_events'));
    RETURN QUERY
        SELECT h.seq, h.hash, date_trunc('microseconds', clock_timestamp()),
               (SELECT k.key_enc FROM user_data_keys AS k WHERE k.user_id = owner)
        FROM (SELECT 1) AS one
        LEFT JOIN (SELECT e.seq, e.hash FROM audit_events AS e ORDER BY e.seq DESC LIMIT 1) AS h
            ON true;
END $$;
