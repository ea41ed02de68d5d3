//! The messages, from `templates/<locale>/<name>.txt|.html`, compiled into
//! the binary. The first line of a `.txt` is `Subject: …`. Placeholders
//! are `{{product}}` and `{{link}}`; in HTML their values are escaped.
use serde::{Deserialize, Serialize};

/// Every message authd sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    VerifyEmail,
    ConfirmNewEmail,
    AccountExists,
    ResetPassword,
    PasswordChanged,
    MfaEnabled,
    MfaDisabled,
    EmailChanged,
}

/// The locale used when an account's has no templates.
pub const DEFAULT_LOCALE: &str = "en";

macro_rules! locale {
    ($locale:literal) => {
        (
            $locale,
            [
                (Template::VerifyEmail, locale!(@pair $locale, "verify_email")),
                (Template::ConfirmNewEmail, locale!(@pair $locale, "confirm_new_email")),
                (Template::AccountExists, locale!(@pair $locale, "account_exists")),
                (Template::ResetPassword, locale!(@pair $locale, "reset_password")),
                (Template::PasswordChanged, locale!(@pair $locale, "password_changed")),
                (Template::MfaEnabled, locale!(@pair $locale, "mfa_enabled")),
                (Template::MfaDisabled, locale!(@pair $locale, "mfa_disabled")),
                (Template::EmailChanged, locale!(@pair $locale, "email_changed")),
            ],
        )
    };
    (@pair $locale:literal, $name:literal) => {
        (
            include_str!(concat!("../../../templates/", $locale, "/", $name, ".txt")),
            include_str!(concat!("../../../templates/", $locale, "/", $name, ".html")),
        )
    };
}

type Locale = (&'static str, [(Template, (&'static str, &'static str)); 8]);

static LOCALES: [Locale; 2] = [locale!("en"), locale!("de")];

/// The locales with templates.
pub fn locales() -> impl Iterator<Item = &'static str> {
    LOCALES.iter().map(|(locale, _)| *locale)
}

/// A message ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

// The body holds the link, a secret: never print it.
impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rendered([REDACTED])")
    }
}

/// `template` in `locale` (or the default locale), filled in.
pub fn render(template: Template, locale: &str, product: &str, link: Option<&str>) -> Rendered {
    let (text, html) = lookup(template, locale)
        .or_else(|| lookup(template, DEFAULT_LOCALE))
        .unwrap_or(("Subject: \n\n", ""));
    let link = link.unwrap_or("");
    let fill = |s: &str, product: &str, link: &str| {
        s.replace("{{product}}", product).replace("{{link}}", link)
    };
    let text = fill(text, product, link);
    let (subject, body) = match text.split_once("\n\n") {
        Some((head, body)) => (head.trim_start_matches("Subject:").trim(), body),
        None => ("", text.as_str()),
    };
    Rendered {
        subject: subject.to_owned(),
        text: body.to_owned(),
        html: fill(html, &escape(product), &escape(link)),
    }
}

fn lookup(template: Template, locale: &str) -> Option<(&'static str, &'static str)> {
    let (_, messages) = LOCALES.iter().find(|(l, _)| *l == locale)?;
    messages
        .iter()
        .find(|(t, _)| *t == template)
        .map(|(_, pair)| *pair)
}

fn escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Template; 8] = [
        Template::VerifyEmail,
        Template::ConfirmNewEmail,
        Template::AccountExists,
        Template::ResetPassword,
        Template::PasswordChanged,
        Template::MfaEnabled,
        Template::MfaDisabled,
        Template::EmailChanged,
    ];

    #[test]
    fn every_template_has_a_subject_and_fills_its_placeholders() {
        for locale in locales() {
            for template in ALL {
                let r = render(
                    template,
                    locale,
                    "Acme <ID>",
                    Some("https://x.test/a?token=t&u=1"),
                );
                assert!(!r.subject.is_empty(), "{locale} {template:?}");
                assert!(r.subject.contains("Acme <ID>"), "{locale} {template:?}");
                for body in [&r.text, &r.html] {
                    assert!(!body.contains("{{"), "{locale} {template:?}");
                }
                assert!(r.html.contains("Acme &lt;ID&gt;"));
                let links = matches!(
                    template,
                    Template::VerifyEmail | Template::ConfirmNewEmail | Template::ResetPassword
                );
                assert_eq!(r.text.contains("https://x.test/a?token=t&u=1"), links);
                assert_eq!(r.html.contains("https://x.test/a?token=t&amp;u=1"), links);
            }
        }
    }

    #[test]
    fn an_unknown_locale_falls_back_to_english() {
        let fr = render(Template::VerifyEmail, "fr", "authd", Some("l"));
        let en = render(Template::VerifyEmail, "en", "authd", Some("l"));
        assert_eq!(fr, en);
        let de = render(Template::VerifyEmail, "de", "authd", Some("l"));
        assert!(de.subject.starts_with("Bestätigen"));
    }
}
