//! openapi.yaml is the public contract: it must list exactly the routes the
//! router serves and exactly the error codes the service can return.
use crate::helpers::*;
use serde_yaml::Value;
use std::collections::BTreeSet;

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes_the_router_serves() {
    // A provider, so that federation paths answer for `{id}` = its id
    // (at an address where nothing listens: those calls fail with 502).
    let secret = format!("{}/secret", tempdir());
    std::fs::write(&secret, "s").unwrap();
    let app = spawn_with(|s| {
        let provider: authd::config::ProviderSettings = serde_json::from_value(serde_json::json!({
            "issuer": "http://127.0.0.1:9",
            "client_id": "authd",
            "client_secret_file": secret,
        }))
        .unwrap();
        s.federation.providers.insert("id".into(), provider);
    })
    .await;
    let (_, table, _) = authd::http::build(app.state.clone()).unwrap();
    let served: BTreeSet<(String, String)> = table
        .0
        .iter()
        .map(|(m, p)| (m.as_str().to_lowercase(), (*p).to_owned()))
        .collect();
    let spec = spec();
    let methods = ["get", "post", "put", "patch", "delete"];
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_mapping()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            let path = path.as_str().unwrap().to_owned();
            item.as_mapping()
                .unwrap()
                .keys()
                .filter_map(|k| k.as_str())
                .filter(|k| methods.contains(k))
                .map(move |m| (m.to_owned(), path.clone()))
        })
        .collect();
    assert_eq!(served, documented);
    // And every served route answers (no 404/405 from a table/router mismatch).
    for (method, path) in &served {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url(&path.replace("{id}", "id")))
            .send()
            .await
            .unwrap();
        assert!(![404, 405].contains(&response.status().as_u16()), "{path}");
    }
}

#[test]
fn openapi_error_codes_match_the_service() {
    let spec = spec();
    let documented: BTreeSet<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let produced: BTreeSet<&str> = authd::Error::CODES.iter().copied().collect();
    assert_eq!(documented, produced);
}

/// One value of every error with a fixed message.
fn fixed_errors() -> Vec<authd::Error> {
    use authd::Error::*;
    vec![
        MalformedJson,
        UnsupportedMediaType,
        PayloadTooLarge,
        InvalidEmail,
        WeakPassword(vec![]),
        InvalidCredentials,
        EmailNotVerified,
        InvalidRefreshToken,
        InvalidCode,
        InvalidLinkToken,
        InvalidMfaToken,
        MfaAlreadyEnabled,
        MfaNotEnabled,
        MfaSetupRequired,
        InvalidToken,
        ForbiddenOrigin,
        Forbidden,
        MfaRequired,
        LastAdmin,
        InvalidClient,
        InvalidReturnTo,
        InvalidState("x"),
        IdpUnavailable,
        InvalidIdToken("x"),
        FederationDenied("x"),
        EmailDomainNotAllowed,
        IdempotencyKeyReused,
        IdempotencyInProgress,
        AlreadyProcessed,
        RateLimited {
            retry_after_secs: 1,
        },
        Overloaded,
        Unavailable(sqlx::Error::PoolTimedOut),
        RequestTimeout,
        NotFound,
        MethodNotAllowed,
        NotReady,
        Internal(anyhow::anyhow!("x")),
    ]
}

fn error_examples<'a>(node: &'a Value, out: &mut Vec<(&'a str, &'a str)>) {
    match node {
        Value::Mapping(map) => {
            if let (Some(Value::String(code)), Some(Value::String(message))) =
                (map.get("error"), map.get("message"))
            {
                out.push((code, message));
            }
            map.values().for_each(|v| error_examples(v, out));
        }
        Value::Sequence(items) => items.iter().for_each(|v| error_examples(v, out)),
        _ => {}
    }
}

#[test]
fn openapi_error_examples_show_the_real_messages() {
    let errors = fixed_errors();
    let codes: BTreeSet<&str> = errors.iter().map(authd::Error::code).collect();
    // Every code but the one whose message names the offending field.
    let expected: BTreeSet<&str> = authd::Error::CODES
        .iter()
        .copied()
        .filter(|c| *c != "invalid_request")
        .collect();
    assert_eq!(codes, expected);
    let spec = spec();
    let mut examples = Vec::new();
    error_examples(&spec, &mut examples);
    assert!(examples.len() >= 15, "{examples:?}");
    // A code may have more than one message (`invalid_token` for a bearer
    // token and for a mailed link): an example must show one of them.
    for (code, message) in examples {
        let messages: Vec<&str> = errors
            .iter()
            .filter(|e| e.code() == code)
            .map(authd::Error::message)
            .collect();
        if !messages.is_empty() {
            assert!(messages.contains(&message), "example for {code}: {message}");
        }
    }
}
