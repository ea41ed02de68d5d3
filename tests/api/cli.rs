//! The `authd` binary itself: help, migrate, key management, configuration
//! layering, and the prod profile's refusal to run without its secrets.
use crate::helpers::*;
use std::process::{Command, Output};

fn authd(args: &[&str], env: &[(&str, &str)]) -> Output {
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

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
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
