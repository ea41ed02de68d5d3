//! The `authd` binary itself: help, migrate, key management, configuration
//! layering, and the prod profile's refusal to run without its secrets.
use crate::helpers::*;
use std::process::{Command, Output};

pub fn authd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authd"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("AUTHD_PROFILE", "test")
        .env("RUST_LOG", "error");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run authd")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_explains_every_command() {
    let output = authd(&["--help"], &[]);
    assert!(output.status.success());
    let help = stdout(&output);
    for command in ["serve", "migrate", "keys"] {
        assert!(help.contains(command), "{help}");
    }
    let keys = stdout(&authd(&["keys", "--help"], &[]));
    assert!(keys.contains("rotate") && keys.contains("list"), "{keys}");
    let rotate = stdout(&authd(&["keys", "rotate", "--help"], &[]));
    assert!(rotate.contains("keeps verifying"), "{rotate}");
}

#[tokio::test]
async fn migrate_and_key_rotation_work_from_the_command_line() {
    let (name, pool) = create_database().await;
    let url = database_url(&name);
    let dir = tempdir();
    let key_file = format!("{dir}/master.key");
    std::fs::write(&key_file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    // AUTHD_<SECTION>__<KEY> variables override single config values.
    let env = [
        ("AUTHD_DATABASE__URL", url.as_str()),
        ("AUTHD_SECRETS__MASTER_KEY_FILE", key_file.as_str()),
    ];
    let migrate = authd(&["migrate"], &env);
    assert!(migrate.status.success(), "{}", stderr(&migrate));
    for _ in 0..2 {
        let rotate = authd(&["keys", "rotate"], &env);
        assert!(rotate.status.success(), "{}", stderr(&rotate));
        assert!(
            stdout(&rotate).contains("published now"),
            "{}",
            stdout(&rotate)
        );
    }
    let immediate = authd(&["keys", "rotate", "--immediately"], &env);
    assert!(immediate.status.success(), "{}", stderr(&immediate));
    // The first key was active at once (there was none); the second waits
    // for its activation delay; the immediate one signs now, so the first
    // only verifies.
    let list = stdout(&authd(&["keys", "list"], &env));
    assert_eq!(list.matches(" active ").count(), 1, "{list}");
    assert_eq!(list.matches(" pending ").count(), 1, "{list}");
    assert_eq!(list.matches(" verify-only ").count(), 1, "{list}");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(keys, 3);
    drop_database(pool, &name).await;
}

#[test]
fn invalid_configuration_is_reported_by_key() {
    let output = authd(&["keys", "list"], &[("AUTHD_HTTP__ADDR", "not-an-address")]);
    assert!(!output.status.success());
    // Environment keys are reported as written (upper case).
    assert!(
        stderr(&output).to_lowercase().contains("http.addr"),
        "{}",
        stderr(&output)
    );
    let typo = authd(&["keys", "list"], &[("AUTHD_AUTH__ISUER", "x")]);
    assert!(!typo.status.success());
    assert!(
        stderr(&typo).to_lowercase().contains("isuer"),
        "{}",
        stderr(&typo)
    );
}

#[test]
fn prod_refuses_to_serve_without_a_master_key_file() {
    let dir = tempdir();
    let missing = format!("{dir}/absent.key");
    let output = authd(
        &["serve"],
        &[
            ("AUTHD_PROFILE", "prod"),
            ("AUTHD_SECRETS__MASTER_KEY_FILE", missing.as_str()),
            ("AUTHD_HTTP__ADDR", "127.0.0.1:0"),
            (
                "AUTHD_DATABASE__URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            ("AUTHD_DATABASE__MIGRATE_ON_START", "false"),
        ],
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("secrets.master_key_file"), "{err}");
    assert!(
        !std::path::Path::new(&missing).exists(),
        "prod must not generate a key"
    );
    let generate = authd(
        &["keys", "list"],
        &[
            ("AUTHD_PROFILE", "prod"),
            ("AUTHD_SECRETS__GENERATE_MASTER_KEY", "true"),
        ],
    );
    assert!(!generate.status.success());
    assert!(
        stderr(&generate).contains("generate_master_key"),
        "{}",
        stderr(&generate)
    );
}

fn write_key(dir: &str, name: &str, byte: u8, mode: u32) -> String {
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    let path = format!("{dir}/{name}");
    let key = base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    std::fs::write(&path, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[tokio::test]
async fn audit_verify_exits_1_at_the_first_broken_link() {
    let (name, pool) = create_database().await;
    let url = database_url(&name);
    let dir = tempdir();
    let key_file = write_key(&dir, "master.key", 7, 0o600);
    let env = [
        ("AUTHD_DATABASE__URL", url.as_str()),
        ("AUTHD_SECRETS__MASTER_KEY_FILE", key_file.as_str()),
    ];
    for _ in 0..3 {
        assert!(authd(&["keys", "rotate"], &env).status.success());
    }
    let intact = authd(&["audit", "verify"], &env);
    assert!(intact.status.success(), "{}", stderr(&intact));
    assert_eq!(stdout(&intact).trim(), "audit chain intact: 3 events");

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET details = '{}' WHERE seq = 2")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_events ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let broken = authd(&["audit", "verify"], &env);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stdout(&broken).contains("broken at seq 2"),
        "{}",
        stdout(&broken)
    );
    drop_database(pool, &name).await;
}

#[tokio::test]
async fn master_key_rotation_reseals_everything_and_keeps_the_chain() {
    let (name, pool) = create_database().await;
    let url = database_url(&name);
    let dir = tempdir();
    let old_key = write_key(&dir, "old.key", 1, 0o600);
    let new_key = write_key(&dir, "new.key", 2, 0o600);
    let with_key = |key: &str| {
        vec![
            ("AUTHD_DATABASE__URL", url.clone()),
            ("AUTHD_SECRETS__MASTER_KEY_FILE", key.to_owned()),
        ]
    };
    let run = |args: &[&str], key: &str| {
        let env = with_key(key);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        authd(args, &env)
    };
    assert!(run(&["keys", "rotate"], &old_key).status.success());
    assert!(run(&["keys", "rotate"], &old_key).status.success());
    let before: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT private_key_enc FROM signing_keys ORDER BY kid")
            .fetch_all(&pool)
            .await
            .unwrap();

    let rotated = run(
        &["secrets", "rotate-master", "--new-key-file", &new_key],
        &old_key,
    );
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(
        stdout(&rotated).contains("re-sealed 3 keys"),
        "{}",
        stdout(&rotated)
    );
    let after: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT private_key_enc FROM signing_keys ORDER BY kid")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(before.iter().zip(&after).all(|(b, a)| b != a));

    // The new key opens everything (the audit key included: the chain
    // still verifies, with the rotation recorded); the old key no longer does.
    let verify = run(&["audit", "verify"], &new_key);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    assert!(stdout(&verify).contains("3 events"));
    assert!(run(&["keys", "rotate"], &new_key).status.success());
    let stale = run(&["audit", "verify"], &old_key);
    assert!(!stale.status.success());
    assert!(
        stderr(&stale).contains("another master key"),
        "{}",
        stderr(&stale)
    );
    drop_database(pool, &name).await;
}

#[tokio::test]
async fn a_replica_left_on_the_old_master_key_seals_nothing_the_new_key_cannot_open() {
    use authd::crypto::MasterKey;
    use std::path::Path;
    let app = spawn_app().await;
    app.create_user("early@example.com").await;
    let old = MasterKey::load("test", Path::new(&app.master_key_file)).unwrap();
    let new_file = format!("{}/new.key", tempdir());
    let new = MasterKey::load_or_generate(Path::new(&new_file), true).unwrap();
    let ctx = authd::domain::audit::Context::cli();
    authd::domain::master_key_rotation::rotate_master(&app.db, &old, &new, &app.state.audit, &ctx)
        .await
        .unwrap();
    // This replica has not restarted yet. A signup needs a new account key,
    // which it would seal under the old master key: refused, whole.
    let response = app.signup("late@example.com", PASSWORD).await;
    assert_eq!(response.status(), 500);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM user_data_keys").await, 1);
    // Restarted with the new key, every account works.
    std::fs::copy(&new_file, &app.master_key_file).unwrap();
    let (again, _) = spawn_again(&app, |_| {}).await;
    again.create_user("late@example.com").await;
    for email in ["early@example.com", "late@example.com"] {
        let login = again.login(email, PASSWORD, "native").await;
        assert_eq!(login.status(), 200, "{email}");
    }
}

#[tokio::test]
async fn two_replicas_creating_a_data_key_at_once_both_get_the_stored_one() {
    let (name, pool) = create_database().await;
    let now = time::OffsetDateTime::now_utc();
    // The other replica's insert, not yet committed.
    let mut other = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO sealed_keys (purpose, ciphertext, created_at) VALUES ('race', 'first', $1)",
    )
    .bind(now)
    .execute(&mut *other)
    .await
    .unwrap();
    let ours = tokio::spawn({
        let pool = pool.clone();
        async move { authd::storage::sealed_keys::insert_or_get(&pool, "race", b"second", now).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    other.commit().await.unwrap();
    let stored = ours.await.unwrap().unwrap();
    assert_eq!(stored, b"first");
    drop_database(pool, &name).await;
}

#[test]
fn prod_refuses_inline_secrets_and_loose_secret_files() {
    let dir = tempdir();
    let loose = write_key(&dir, "loose.key", 3, 0o644);
    let tight = write_key(&dir, "tight.key", 3, 0o600);
    let prod = |extra: &[(&str, &str)]| {
        let mut env = vec![
            ("AUTHD_PROFILE", "prod"),
            ("AUTHD_SECRETS__MASTER_KEY_FILE", tight.as_str()),
        ];
        env.extend_from_slice(extra);
        authd(&["keys", "list"], &env)
    };
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("AUTHD_DATABASE__PASSWORD", "hunter2")],
            "database.password is a secret given inline",
        ),
        (
            &[("AUTHD_SECRETS__MASTER_KEY", "c2VjcmV0")],
            "secrets.master_key is a secret given inline",
        ),
        (
            &[("AUTHD_DATABASE__URL", "postgres://app:hunter2@127.0.0.1/x")],
            "database.url must not contain a password",
        ),
        (
            &[("AUTHD_SECRETS__MASTER_KEY_FILE", loose.as_str())],
            "readable by group or others",
        ),
    ];
    for (env, expected) in cases {
        let output = prod(env);
        assert!(!output.status.success(), "{env:?}");
        let err = stderr(&output);
        assert!(
            err.to_lowercase().contains(&expected.to_lowercase()),
            "{err}"
        );
        assert!(
            !err.contains("hunter2") && !err.contains("c2VjcmV0"),
            "the value leaked: {err}"
        );
    }
}

#[tokio::test]
async fn users_grant_revoke_disable_and_list_from_the_command_line() {
    let app = spawn_app().await;
    app.create_user("ops@example.com").await;
    app.create_user("other@example.com").await;
    let url = database_url(&app.db_name);
    let env = [
        ("AUTHD_DATABASE__URL", url.as_str()),
        (
            "AUTHD_SECRETS__MASTER_KEY_FILE",
            app.master_key_file.as_str(),
        ),
    ];
    let grant = authd(
        &[
            "users",
            "grant",
            "--email",
            "OPS@example.com",
            "--role",
            "admin",
        ],
        &env,
    );
    assert!(grant.status.success(), "{}", stderr(&grant));
    assert!(stdout(&grant).contains("admin"), "{}", stdout(&grant));
    let unknown = authd(
        &[
            "users",
            "grant",
            "--email",
            "ops@example.com",
            "--role",
            "root",
        ],
        &env,
    );
    assert!(!unknown.status.success());
    // The last admin keeps the role.
    let last = authd(
        &[
            "users",
            "revoke",
            "--email",
            "ops@example.com",
            "--role",
            "admin",
        ],
        &env,
    );
    assert!(!last.status.success(), "{}", stdout(&last));
    let list = stdout(&authd(&["users", "list", "--role", "admin"], &env));
    assert!(
        list.contains("ops@example.com") && !list.contains("other@example.com"),
        "{list}"
    );
    let disable = authd(
        &[
            "users",
            "disable",
            "--email",
            "other@example.com",
            "--reason",
            "break glass",
        ],
        &env,
    );
    assert!(disable.status.success(), "{}", stderr(&disable));
    assert_eq!(
        app.login("other@example.com", PASSWORD, "native")
            .await
            .status(),
        401
    );
    // Audited, with the CLI as the actor.
    let by_cli = app
        .count(
            "SELECT count(*) FROM audit_events
             WHERE event_type IN ('roles_changed', 'account_disabled') AND details->>'by' = 'cli'",
        )
        .await;
    assert_eq!(by_cli, 2);
}
