-- A login writes its session and its audit event in one statement, with
-- no transaction around it: it reads the chain's head without the lock,
-- computes the event's hash on it, and then, inside the writing statement,
-- `authd_audit_lock_at` takes the lock and checks that the head is still
-- the one the hash was computed on. If another append came first, the
-- statement fails with serialization_failure and nothing is written; the
-- caller reads the new head and tries again. Appends in a transaction keep
-- taking the lock first (`authd_audit_lock_head`), and both hold it until
-- their statement or transaction ends, so the chain has no fork and no gap.

-- The head and the owner's sealed key, without the lock (VOLATILE: it reads
-- the clock).
CREATE FUNCTION authd_audit_head(owner uuid)
RETURNS TABLE (head_seq bigint, head_hash bytea, occurred_at timestamptz, owner_key bytea)
LANGUAGE sql VOLATILE AS $$
    SELECT h.seq, h.hash, date_trunc('microseconds', clock_timestamp()),
           (SELECT k.key_enc FROM user_data_keys AS k WHERE k.user_id = owner)
    FROM (SELECT 1) AS one
    LEFT JOIN (SELECT e.seq, e.hash FROM audit_events AS e ORDER BY e.seq DESC LIMIT 1) AS h
        ON true
$$;

-- The lock, then the head it protects (see 20261201000009).
CREATE OR REPLACE FUNCTION authd_audit_lock_head(owner uuid)
RETURNS TABLE (head_seq bigint, head_hash bytea, occurred_at timestamptz, owner_key bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('authd.audit_events'));
    RETURN QUERY SELECT * FROM authd_audit_head(owner);
END $$;

-- The lock, and a check that the last event is still `expected` (null: the
-- chain is still empty). Each statement of a VOLATILE function takes a
-- fresh snapshot, so the check sees every append committed before the
-- lock was granted.
CREATE FUNCTION authd_audit_lock_at(expected bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('authd.audit_events'));
    IF (SELECT max(e.seq) FROM audit_events AS e) IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'the audit chain moved on' USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN expected;
END $$;
