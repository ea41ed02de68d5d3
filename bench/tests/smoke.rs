//! Runs the benchmark binary for about a second so it cannot rot. Timings are
//! not asserted (they belong to the benchmark, not to tests); the outputs are.
use std::process::Command;

#[test]
fn benchmark_runs_and_writes_its_reports() {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = std::env::temp_dir().join(format!("authd-bench-smoke-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_authd-bench"))
        .current_dir(workspace)
        .args([
            "--duration",
            "200ms",
            "--levels",
            "1,2",
            "--users",
            "10",
            "--out-dir",
        ])
        .arg(&out)
        .output()
        .expect("run authd-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for heading in [
        "Physical baselines",
        "| login | 2 |",
        "| refresh | 1 |",
        "| me | 2 |",
        "| jwks | 1 |",
        "mixed: refresh",
        "| login+mfa |",
        "Overload",
    ] {
        assert!(
            stdout.contains(heading),
            "missing {heading:?} in:\n{stdout}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("valid JSON");
    let scenarios = json["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 8);
    // The MFA login completed: both steps answered, with tokens.
    assert!(
        json["mfa"][0]["stats"]["ok"].as_u64().unwrap_or(0) > 0,
        "{json}"
    );
    // Every scenario really served requests.
    assert!(
        scenarios
            .iter()
            .all(|s| s["stats"]["ok"].as_u64().unwrap_or(0) > 0),
        "{json}"
    );
    assert!(
        json["baselines"]["argon2_verify_per_sec"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    let svg = std::fs::read_to_string(out.join("results.svg")).expect("results.svg");
    assert!(svg.starts_with("<svg") && svg.contains("throughput"));
    let _ = std::fs::remove_dir_all(out);
}
