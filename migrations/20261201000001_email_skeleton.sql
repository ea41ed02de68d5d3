-- The UTS #39 confusable skeleton of `email_key`. Unique, so that nobody can
-- register an address that reads like an existing account's
-- (`k\u0435lvin@…` with a Cyrillic е next to `kelvin@…`). No SQL function
-- can compute it: authd fills it in for rows older than this migration when
-- it starts (`domain::accounts::backfill_email_skeletons`). Rows that stay
-- NULL are look-alikes of an older account that existed before the rule;
-- they keep working and are named in a warning at each start.
ALTER TABLE users ADD COLUMN email_skeleton text;
ALTER TABLE users ADD CONSTRAINT users_email_skeleton_unique UNIQUE (email_skeleton);
CREATE INDEX users_email_skeleton_missing ON users (created_at) WHERE email_skeleton IS NULL;
