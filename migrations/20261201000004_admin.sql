-- Roles of the admin plane, and what the admin API reads.
INSERT INTO roles (name, description) VALUES
    ('support', 'Reads accounts, ends their sessions, resends their verification'),
    ('auditor', 'Reads the audit log')
ON CONFLICT (name) DO NOTHING;
UPDATE roles SET description = 'Everything support and auditor may, plus disabling accounts, roles and MFA resets'
WHERE name = 'admin';

-- Set when a session opens.
ALTER TABLE users ADD COLUMN last_login_at timestamptz;

-- Keyset paging of GET /v1/admin/users (stable order: created_at, id) and
-- its email prefix filter; the audit view by kind.
CREATE INDEX users_created_at_id ON users (created_at, id);
CREATE INDEX users_email_key_prefix ON users (email_key text_pattern_ops);
CREATE INDEX audit_events_type ON audit_events (event_type, seq DESC);
