-- Account lifecycle: email verification and change, password reset, the
-- mail outbox, session details, and per-account keys for crypto-shredding.

-- The language of the account's mail (a template directory under templates/).
ALTER TABLE users ADD COLUMN locale text NOT NULL DEFAULT 'en'
    CONSTRAINT users_locale_format CHECK (locale ~ '^[a-z]{2}(-[A-Z]{2})?$');

-- Shown in GET /v1/me/sessions; deleted with the session or the account.
ALTER TABLE sessions ADD COLUMN client_ip inet;
ALTER TABLE sessions ADD COLUMN user_agent text
    CONSTRAINT sessions_user_agent_length CHECK (length(user_agent) <= 256);

-- One random data key per account, sealed under a master-derived key. The
-- account's personal audit fields are encrypted under it; deleting the
-- account deletes the key, and with it every way to read them.
CREATE TABLE user_data_keys (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    key_enc    bytea NOT NULL,
    created_at timestamptz NOT NULL
);

-- Personal fields (client IP, user agent) of an event about an account,
-- sealed under that account's data key; client_ip and user_agent are then
-- null. The chain's HMAC covers the ciphertext, so shredding the key leaves
-- the chain verifiable.
ALTER TABLE audit_events ADD COLUMN personal_enc bytea;

-- Links mailed to the account: only the SHA-256 of each 256-bit token.
CREATE TABLE account_tokens (
    token_hash  bytea PRIMARY KEY CONSTRAINT account_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CONSTRAINT account_tokens_purpose
                    CHECK (purpose IN ('verify_email', 'change_email', 'reset_password')),
    -- change_email only: the address it moves the account to.
    new_email   text,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);

-- Mail waiting for delivery. The payload (recipient, template, link) is
-- sealed under the outbox data key, so no address or token is here in the
-- clear; a delivered row is deleted at once.
CREATE TABLE mail_outbox (
    id              uuid PRIMARY KEY,
    user_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    payload         bytea NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);

-- Mails anyone can trigger, per address (an HMAC of it), for the hourly cap.
CREATE TABLE mail_quota (
    subject bytea NOT NULL,
    sent_at timestamptz NOT NULL
);
CREATE INDEX mail_quota_subject ON mail_quota (subject, sent_at);
