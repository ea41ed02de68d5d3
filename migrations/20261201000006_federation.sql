-- Sign-in through OpenID Providers.

-- A federated account may have no password: it signs in only through its
-- provider, and password login, reset and change treat it as unknown.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;

-- Who an account is at a provider: found by (provider, subject), never by
-- address unless the provider is configured to link verified addresses.
CREATE TABLE federated_identities (
    provider      text NOT NULL,
    subject       text NOT NULL CONSTRAINT federated_identities_subject_length CHECK (octet_length(subject) BETWEEN 1 AND 255),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    last_login_at timestamptz NOT NULL,
    PRIMARY KEY (provider, subject),
    CONSTRAINT federated_identities_one_per_provider UNIQUE (user_id, provider)
);

-- A started sign-in, single use, for 10 minutes. Only the SHA-256 of its
-- `state` is stored; the nonce and PKCE verifier are derived from the state
-- under a key of the service, so this table holds nothing to replay with.
CREATE TABLE federation_states (
    state_hash bytea PRIMARY KEY CONSTRAINT federation_states_hash_length CHECK (octet_length(state_hash) = 32),
    provider   text NOT NULL,
    return_to  text NOT NULL,
    client_id  text REFERENCES clients (id),
    created_at timestamptz NOT NULL
);
CREATE INDEX federation_states_created_at ON federation_states (created_at);
