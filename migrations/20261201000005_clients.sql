-- Registered clients (`authd clients create`): each names the audience of
-- its access tokens. Immutable once created: to change one, create another.
CREATE TABLE clients (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    audience        text NOT NULL,
    access_ttl_secs integer NOT NULL CONSTRAINT clients_access_ttl CHECK (access_ttl_secs BETWEEN 60 AND 3600),
    scopes          text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL,
    CONSTRAINT clients_name_unique UNIQUE (name),
    CONSTRAINT clients_id_shape CHECK (id ~ '^[a-z0-9]{26}$')
);

-- A session mints for one client (NULL: the built-in default client) and,
-- when it came through federation, names the identity provider.
ALTER TABLE sessions ADD COLUMN client_id text REFERENCES clients (id);
ALTER TABLE sessions ADD COLUMN idp text;
ALTER TABLE mfa_challenges ADD COLUMN client_id text REFERENCES clients (id);
