//! The byte string an event's chain hash covers.
use serde_json::Value;
use uuid::Uuid;

use crate::storage::audit::StoredEvent;

/// Associated data of an event's sealed personal fields: bound to the event
/// and its owner.
pub(super) fn personal_aad(seq: i64, owner: Uuid) -> Vec<u8> {
    format!("audit-personal:{seq}:{owner}").into_bytes()
}

/// Length-prefixed fields in a fixed order; absent fields have their own
/// marker so `None` and `""` differ. `personal_enc` (hex) is appended only
/// when present, so events written before it existed hash as they did.
/// Built from values as PostgreSQL returns them, so an event read back
/// hashes the same as when it was written. A field too long for its 32-bit
/// prefix is an error, never a truncated or ambiguous encoding.
pub(super) fn canonical(e: &StoredEvent) -> anyhow::Result<Vec<u8>> {
    let micros = e.occurred_at.unix_timestamp_nanos() / 1000;
    let fields: [Option<String>; 10] = [
        Some(e.seq.to_string()),
        Some(micros.to_string()),
        Some(e.event_type.clone()),
        e.actor_user_id.map(|u| u.to_string()),
        e.subject_user_id.map(|u| u.to_string()),
        e.client_ip.map(|ip| ip.ip().to_string()),
        e.user_agent.clone(),
        e.request_id.clone(),
        Some(e.outcome.clone()),
        Some(canonical_json(&e.details)),
    ];
    let personal = e.personal_enc.as_ref().map(|p| hex(p));
    let mut out = Vec::new();
    for field in fields.into_iter().chain(personal.map(Some)) {
        match field {
            Some(text) => {
                let length = u32::try_from(text.len())
                    .ok()
                    .filter(|&n| n != ABSENT)
                    .ok_or_else(|| anyhow::anyhow!("an audit field is too long to encode"))?;
                out.extend(length.to_be_bytes());
                out.extend(text.as_bytes());
            }
            None => out.extend(ABSENT.to_be_bytes()),
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The length prefix that marks an absent field.
const ABSENT: u32 = u32::MAX;

/// JSON with object keys sorted at every level (jsonb reorders keys).
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        scalar => scalar.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap_or_default();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap_or_default();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#);
    }
}
