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
    let app = spawn_app().await;
    let (_, table) = authd::http::build(app.state.clone());
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
            .request(method, app.url(path))
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
