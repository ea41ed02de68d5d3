-- Tamper-evident, append-only audit log.
--
-- Each event's `hash` is HMAC-SHA256(audit key, prev_hash || canonical event);
-- the audit key is sealed under the master key (table `sealed_keys`), so write
-- access to this database alone cannot produce a consistent chain. `seq` has
-- no gaps: appends are serialised by the application, and a missing number is
-- a deleted event.
CREATE TABLE audit_events (
    seq             bigint PRIMARY KEY CONSTRAINT audit_events_seq_positive CHECK (seq > 0),
    occurred_at     timestamptz NOT NULL,
    event_type      text NOT NULL,
    actor_user_id   uuid,
    subject_user_id uuid,
    client_ip       inet,
    user_agent      text CONSTRAINT audit_events_user_agent_length CHECK (length(user_agent) <= 256),
    request_id      text,
    outcome         text NOT NULL,
    details         jsonb NOT NULL,
    prev_hash       bytea NOT NULL,
    hash            bytea NOT NULL
);
CREATE INDEX audit_events_subject ON audit_events (subject_user_id, seq DESC);
CREATE INDEX audit_events_actor ON audit_events (actor_user_id, seq DESC);

CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- Random data keys sealed under a master-derived key (AES-256-GCM); a master
-- key rotation re-seals them without changing them.
CREATE TABLE sealed_keys (
    purpose    text PRIMARY KEY,
    ciphertext bytea NOT NULL,
    created_at timestamptz NOT NULL
);
