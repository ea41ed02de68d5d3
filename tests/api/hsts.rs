//! Strict-Transport-Security is opt-in through `http.hsts_max_age_secs`.
use crate::helpers::*;

#[tokio::test]
async fn hsts_is_sent_only_when_configured() {
    let off = spawn_app().await;
    let response = off.client.get(off.url("/healthz")).send().await.unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "{:?}",
        response.headers()
    );

    let on = spawn_with(|s| s.http.hsts_max_age_secs = 31_536_000).await;
    // On every response, errors included.
    for path in ["/healthz", "/no-such-path"] {
        let response = on.client.get(on.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
}
