-- Idempotency keys: the first response to a mutating request, so that a
-- retry with the same `Idempotency-Key` gets it again instead of redoing the
-- work. `scope` is `user:<uuid>` or `ip:<client ip>`; keys of different
-- callers never meet. `request_hash` is an HMAC of the request (method, path,
-- body, refresh cookie), never the request itself: login bodies hold
-- passwords. Responses that carry tokens are never stored (`stored = false`,
-- no body). Rows are purged after `idempotency.ttl_secs`.
CREATE TABLE idempotency_keys (
    scope                 text NOT NULL,
    key                   text NOT NULL,
    request_hash          bytea NOT NULL,
    state                 text NOT NULL,
    response_status       integer,
    response_body         bytea,
    response_content_type text,
    stored                boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL,
    PRIMARY KEY (scope, key),
    CONSTRAINT idempotency_keys_state CHECK (state IN ('in_progress', 'completed')),
    CONSTRAINT idempotency_keys_key_length CHECK (octet_length(key) BETWEEN 1 AND 255),
    CONSTRAINT idempotency_keys_hash_length CHECK (octet_length(request_hash) = 32),
    CONSTRAINT idempotency_keys_completed_has_status
        CHECK (state = 'in_progress' OR response_status IS NOT NULL),
    CONSTRAINT idempotency_keys_body_only_when_stored
        CHECK (stored OR (response_body IS NULL AND response_content_type IS NULL))
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
