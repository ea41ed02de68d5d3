-- TOTP multi-factor authentication (RFC 6238) and recovery codes.

-- One TOTP enrolment per account: `pending` from setup until a first code
-- activates it. The secret is sealed with AES-256-GCM under the TOTP data
-- key (sealed_keys 'totp-secrets'), with the user id as associated data, so
-- a ciphertext moved to another row does not open.
CREATE TABLE mfa_totp (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_enc   bytea NOT NULL,
    state        text NOT NULL CONSTRAINT mfa_totp_state CHECK (state IN ('pending', 'active')),
    -- The last time step accepted (replay refusal across replicas): a code
    -- of this step or an earlier one is refused.
    last_step    bigint,
    created_at   timestamptz NOT NULL,
    activated_at timestamptz
);

-- Only an HMAC-SHA256 of each code, under the data key 'recovery-codes'.
CREATE TABLE mfa_recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL CONSTRAINT mfa_recovery_codes_hash_length CHECK (octet_length(code_hash) = 32),
    created_at timestamptz NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- The second step of a login: the SHA-256 of the mfa_token handed out after
-- the password, the channel the session will use, and how many wrong codes
-- it has seen.
CREATE TABLE mfa_challenges (
    token_hash  bytea PRIMARY KEY CONSTRAINT mfa_challenges_hash_length CHECK (octet_length(token_hash) = 32),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_type text NOT NULL CONSTRAINT mfa_challenges_client_type CHECK (client_type IN ('web', 'native')),
    failures    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX mfa_challenges_expires_at ON mfa_challenges (expires_at);
CREATE INDEX mfa_challenges_user_id ON mfa_challenges (user_id);
