-- Core schema: accounts, roles, refresh sessions, signing keys and the
-- per-account login throttle. Constraint names are stable: code matches them.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    -- The address as the user typed it, trimmed and NFKC-normalised.
    email          text NOT NULL,
    -- Lower-cased `email`: the case-insensitive identity.
    email_key      text NOT NULL,
    password_hash  text NOT NULL,
    email_verified boolean NOT NULL DEFAULT false,
    mfa_enabled    boolean NOT NULL DEFAULT false,
    disabled_at    timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    CONSTRAINT users_email_key_unique UNIQUE (email_key),
    CONSTRAINT users_email_length CHECK (octet_length(email) BETWEEN 3 AND 254)
);

CREATE TABLE roles (
    name        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO roles (name, description) VALUES
    ('user', 'Every signed-up account'),
    ('admin', 'May use the admin API');

CREATE TABLE user_roles (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL REFERENCES roles (name),
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, role)
);

-- One row per login: the token family of RFC 9700 §4.14.
CREATE TABLE sessions (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_type         text NOT NULL CONSTRAINT sessions_client_type CHECK (client_type IN ('web', 'native')),
    amr                 text[] NOT NULL,
    auth_time           timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    last_used_at        timestamptz NOT NULL,
    idle_expires_at     timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    revoked_at          timestamptz,
    revoked_reason      text
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_absolute_expires_at ON sessions (absolute_expires_at);

-- Only the SHA-256 of a refresh token is stored.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY CONSTRAINT refresh_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    parent_hash bytea,
    issued_at   timestamptz NOT NULL,
    spent_at    timestamptz,
    -- Set when the one child allowed inside the reuse leeway was issued.
    leeway_used boolean NOT NULL DEFAULT false
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- RSA signing keys. A new key is published in the JWKS at once but signs only
-- from `activate_after`, so resource servers that cache the JWKS know it
-- before tokens signed with it arrive. `retire_after` is NULL for the newest
-- key; older keys keep verifying until every token they signed has expired.
CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    algorithm       text NOT NULL DEFAULT 'RS256',
    public_n        bytea NOT NULL,
    public_e        bytea NOT NULL,
    -- PKCS#8 private key sealed with AES-256-GCM under a master-derived key.
    private_key_enc bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    activate_after  timestamptz NOT NULL,
    retire_after    timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_newest ON signing_keys ((true)) WHERE retire_after IS NULL;

-- Failed-login counters. `subject` is an HMAC of the normalised email (so
-- unknown addresses are throttled exactly like real ones, and the table holds
-- no address); `scope` is the client IP, or '*' for the account-wide ceiling.
CREATE TABLE login_throttle (
    subject         bytea NOT NULL,
    scope           text NOT NULL,
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    blocked_until   timestamptz,
    PRIMARY KEY (subject, scope)
);
CREATE INDEX login_throttle_last_failure_at ON login_throttle (last_failure_at);
