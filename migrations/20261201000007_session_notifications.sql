-- Replicas cache what a bearer request needs (is the session open, the
-- account's profile) and must forget it the moment it changes, whichever
-- replica or tool changed it: every such change notifies the channel
-- `authd_user_changed` with the account's id, from triggers so that no
-- code path can forget to. Notifications go out at commit.

CREATE FUNCTION authd_notify_user_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authd_user_changed', COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END $$;

CREATE FUNCTION authd_notify_user_ref() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authd_user_changed', COALESCE(NEW.user_id, OLD.user_id)::text);
    RETURN NULL;
END $$;

-- The columns a profile or a liveness check reads (not last_login_at,
-- which every login writes).
CREATE TRIGGER users_notify_change
    AFTER UPDATE OF email, email_verified, mfa_enabled, disabled_at, created_at OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION authd_notify_user_row();

-- Revocation (not the refresh bookkeeping, which every refresh writes).
CREATE TRIGGER sessions_notify_change
    AFTER UPDATE OF revoked_at, user_id OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION authd_notify_user_ref();

CREATE TRIGGER user_roles_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON user_roles
    FOR EACH ROW EXECUTE FUNCTION authd_notify_user_ref();

CREATE TRIGGER mfa_recovery_codes_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON mfa_recovery_codes
    FOR EACH ROW EXECUTE FUNCTION authd_notify_user_ref();
