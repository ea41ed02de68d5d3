//! openapi.yaml against the live service, by schemathesis: generated
//! requests (valid, invalid and hostile) must get only documented statuses,
//! bodies and headers that match the schemas, and never a 5xx. Run twice:
//! without credentials, and with a real bearer token so the account routes
//! are exercised past authentication.
//!
//! Needs `schemathesis` on PATH (tests/contract/requirements.txt).
use crate::helpers::*;
use std::path::Path;
use tokio::process::Command;

/// Cases per operation and phase; with 10 operations this gives well over
/// the 1,000 cases per run asserted below.
const MAX_EXAMPLES: &str = "100";
const MIN_CASES: u64 = 1000;

async fn schemathesis(app: &TestApp, name: &str, headers: &[String]) -> u64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let report = format!("{}/schemathesis-{name}.json", tempdir());
    let mut command = Command::new("schemathesis");
    command
        .current_dir(root)
        .args([
            "--config-file",
            "tests/contract/schemathesis.toml",
            "--no-color",
        ])
        .args(["run", "openapi.yaml", "--url", &app.url("")])
        .args(["--checks", "all"])
        // An authentication API refuses schema-valid input by design
        // (wrong or weak passwords, reused idempotency keys): the
        // "positive data must be accepted" check cannot apply.
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", "20261201"])
        .args(["--report", "json", "--report-json-path", &report]);
    for header in headers {
        command.args(["--header", header]);
    }
    let output = match command.output().await {
        Ok(output) => output,
        Err(e) => panic!(
            "could not run schemathesis ({e}); install it: pip install -r tests/contract/requirements.txt"
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis ({name}) found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["failures"], serde_json::json!([]), "{stdout}");
    assert_eq!(report["errors"], serde_json::json!([]), "{stdout}");
    report["test_cases"]["generated"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_contract_violation_with_or_without_a_token() {
    let app = spawn_app().await;
    let anonymous = schemathesis(&app, "anonymous", &[]).await;
    assert!(anonymous >= MIN_CASES, "only {anonymous} cases");

    // Not the password of openapi.yaml's examples, which schemathesis would
    // try with the address it learns from /v1/me.
    let password = "quiet lantern orbit forty eight";
    assert_eq!(
        app.signup("contract@example.com", password).await.status(),
        202
    );
    let login: serde_json::Value = app
        .login("contract@example.com", password, "native")
        .await
        .json()
        .await
        .unwrap();
    let access = str_field(&login, "access_token");
    let bearer = schemathesis(&app, "bearer", &[format!("Authorization: Bearer {access}")]).await;
    assert!(bearer >= MIN_CASES, "only {bearer} cases");
    // The account routes were exercised past authentication: they acted on
    // (or checked the password of) the token's account.
    let reached: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events a JOIN users u ON u.id = a.subject_user_id
         WHERE u.email = 'contract@example.com'
           AND a.event_type IN ('mfa_setup', 'mfa_disabled', 'account_deleted', 'password_changed',
                                'email_change_requested', 'session_revoked')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(reached > 0);
}
