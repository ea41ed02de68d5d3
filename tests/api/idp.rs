//! The test OpenID Provider (`tests/support/idp.mjs`, node oidc-provider)
//! as a child process, its control API, and a browser that walks the
//! sign-in from authd to the provider and back.
use authd::config::{ProviderSettings, Settings};
use reqwest::{Client, Response, StatusCode, header};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{TestApp, tempdir};

pub const PROVIDER: &str = "corp";
pub const CLIENT_ID: &str = "authd";
const CLIENT_SECRET: &str = "idp-client-secret-for-tests";

pub struct Idp {
    pub issuer: String,
    child: Child,
    control: Client,
}

impl Idp {
    /// Starts a provider whose one client may redirect to authd's callback
    /// for `PROVIDER` (authd builds it from `auth.issuer`).
    pub async fn start(settings: &Settings) -> Idp {
        let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
        assert!(
            support.join("node_modules/oidc-provider").exists(),
            "the test IdP is not installed: run `npm ci --prefix tests/support`"
        );
        let redirect = format!(
            "{}/v1/auth/federation/{PROVIDER}/callback",
            settings.auth.issuer.trim_end_matches('/')
        );
        let mut child = Command::new("node")
            .arg(support.join("idp.mjs"))
            .env("IDP_CLIENT_ID", CLIENT_ID)
            .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
            .env("IDP_REDIRECT_URIS", redirect)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node tests/support/idp.mjs");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await.unwrap();
        let ready: Value = serde_json::from_str(&line).expect("the IdP's ready line");
        Idp {
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            child,
            control: Client::new(),
        }
    }

    /// A provider entry for authd pointing at this IdP (defaults as documented).
    pub fn provider_settings(&self) -> ProviderSettings {
        let secret_file = format!("{}/client_secret", tempdir());
        std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
        ProviderSettings {
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret_file: secret_file.into(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            display_name: Some("Corp SSO".into()),
            allowed_email_domains: vec![],
            hosted_domain: None,
            groups_claim: "groups".into(),
            group_roles: BTreeMap::from([
                ("authd-admins".to_owned(), "admin".to_owned()),
                ("helpdesk".to_owned(), "support".to_owned()),
            ]),
            auto_provision: true,
            link_by_verified_email: false,
            mfa_amr_values: ["mfa", "otp", "hwk", "swk", "sms"]
                .map(String::from)
                .to_vec(),
            assume_mfa: false,
        }
    }

    async fn control(&self, path: &str, body: Value) {
        let response = self
            .control
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
    }

    /// Upserts the account and makes it the one that signs in next.
    pub async fn signs_in(&self, account: Value) {
        let sub = account["sub"].clone();
        self.control("/_test/accounts", account).await;
        self.control("/_test/next", json!({ "sub": sub })).await;
    }

    /// The next sign-in is refused by the user (`error=access_denied`).
    pub async fn denies(&self) {
        self.control("/_test/next", json!({ "deny": true })).await;
    }

    /// The next ID token is altered (see tests/support/README.md).
    pub async fn tamper(&self, mode: &str) {
        self.control("/_test/tamper", json!({ "mode": mode })).await;
    }

    /// The last request authd sent to the token endpoint.
    pub async fn last_token_request(&self) -> Value {
        self.control
            .get(format!("{}/_test/last_token_request", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn stop(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A browser: it keeps the provider's cookies in a jar, and authd's
/// `__Host-` cookies (which a jar would not send over http) by hand.
pub struct Browser {
    idp: Client,
    authd: Client,
    pub federation_cookie: Option<String>,
}

/// What a walk through the sign-in produced.
pub struct Walk {
    /// authd's answer to the callback.
    pub response: Response,
    /// The callback's query, as the provider sent it.
    pub callback_query: String,
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            idp: Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            authd: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            federation_cookie: None,
        }
    }

    /// `GET /v1/auth/federation/{PROVIDER}/start` as a browser would.
    pub async fn start(&mut self, app: &TestApp, query: &str) -> Response {
        let response = self
            .authd
            .get(app.url(&format!("/v1/auth/federation/{PROVIDER}/start{query}")))
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        if let Some(cookie) = super::set_cookie(&response, "__Host-authd_federation_corp") {
            self.federation_cookie = Some(super::cookie_value(&cookie));
        }
        response
    }

    /// From the provider's authorization URL to authd's callback URL: the
    /// query the provider sends the browser back with.
    pub async fn through_provider(&self, app: &TestApp, mut location: String) -> String {
        let callback = format!(
            "{}/v1/auth/federation/{PROVIDER}/callback?",
            app.state.settings.auth.issuer.trim_end_matches('/')
        );
        for _ in 0..10 {
            if let Some(query) = location.strip_prefix(&callback) {
                return query.to_owned();
            }
            let response = self.idp.get(&location).send().await.unwrap();
            assert!(
                response.status().is_redirection(),
                "the provider answered {} at {location}",
                response.status()
            );
            location = response.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned();
        }
        panic!("the provider never redirected back to authd");
    }

    /// authd's callback with `query`, carrying the state cookie if any.
    pub async fn callback(&self, app: &TestApp, query: &str, accept: &str) -> Response {
        let mut request = self
            .authd
            .get(app.url(&format!("/v1/auth/federation/{PROVIDER}/callback?{query}")))
            .header(header::ACCEPT, accept);
        if let Some(state) = &self.federation_cookie {
            request = request.header(
                header::COOKIE,
                format!("__Host-authd_federation_corp={state}"),
            );
        }
        request.send().await.unwrap()
    }

    /// The whole walk: start, the provider, and back to authd.
    pub async fn sign_in(&mut self, app: &TestApp, query: &str) -> Walk {
        let started = self.start(app, query).await;
        if started.status() != StatusCode::FOUND {
            panic!(
                "start: {} {}",
                started.status(),
                started.text().await.unwrap()
            );
        }
        let location = started.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        let callback_query = self.through_provider(app, location).await;
        let response = self.callback(app, &callback_query, "text/html").await;
        Walk {
            response,
            callback_query,
        }
    }
}
