//! The v1 document as served and committed: poem-openapi's output with three changes.
//!
//! - Its two alphabetical orders are replaced by a reader's: Swagger UI shows tag sections in
//!   the order of the top-level `tags` array and the *Authorize* dialog's schemes in the order
//!   of `components.securitySchemes`, which poem-openapi sorts by name. Order changes no
//!   schema, operation or reference.
//! - The event payload schemas (`event_payloads`), which no operation references, are added
//!   to `components.schemas` (poem-openapi drops unreferenced schemas).
//! - Request examples for `oneOf` bodies go on the media type ([`union_examples`]).
//!
//! A unit test checks the document is poem-openapi's but for these.

use std::sync::LazyLock;

use serde_yaml::{Mapping, Value};

/// Tag sections in the order a new user meets them: sign in, make an organization, define an
/// agent, run a session, follow and drive it, then the organization's administration.
pub const TAG_ORDER: &[&str] = &[
    "Auth",
    "Me",
    "Organizations",
    "Agents",
    "Sessions",
    "Events",
    "Commands",
    "Desktop",
    "Artifacts",
    "ApiKeys",
    "Members",
    "Invitations",
    "Roles",
    "Audit",
    "Jobs",
];

/// Security schemes in the order the *Authorize* dialog lists them: the bearer token every
/// operation takes first.
pub const SCHEME_ORDER: &[&str] = &["BearerAuth", "ApiKeyAuth"];

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    // YAML is a superset of JSON, and `serde_yaml::Mapping` keeps key order: the document
    // round-trips with only the two orders below changed.
    let mut doc: Value = serde_yaml::from_str(&super::service().spec())
        .expect("poem-openapi writes a JSON document");
    reorder(&mut doc);
    add_event_payloads(&mut doc);
    add_union_examples(&mut doc);
    doc
});

/// Request examples for bodies that are a `oneOf` union: Swagger UI drops the discriminator's
/// value when it builds a sample from a `oneOf` branch, so these go on the media type.
/// `(operationId, example)`; each parses as its operation's request type (tested).
fn union_examples() -> Vec<(&'static str, serde_json::Value)> {
    vec![(
        "commands.create",
        serde_json::json!({ "kind": "click", "args": { "x": 640, "y": 400, "button": "left" } }),
    )]
}

/// Sets [`union_examples`] on their operations' JSON request bodies.
fn add_union_examples(doc: &mut Value) {
    let examples = union_examples();
    let Some(Value::Mapping(paths)) = doc.get_mut("paths") else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_mapping_mut)
        .flat_map(|m| m.values_mut())
    {
        let Some((_, example)) = examples
            .iter()
            .find(|(id, _)| op.get("operationId").and_then(Value::as_str) == Some(*id))
        else {
            continue;
        };
        let Some(Value::Mapping(content)) =
            op.get_mut("requestBody").and_then(|b| b.get_mut("content"))
        else {
            continue;
        };
        for (media_type, media) in content.iter_mut() {
            if let (Some(t), Value::Mapping(media)) = (media_type.as_str(), media)
                && t.starts_with("application/json")
            {
                media.insert(
                    Value::String("example".into()),
                    serde_yaml::to_value(example).expect("JSON is YAML"),
                );
            }
        }
    }
}

/// The spec as JSON (`/v1/openapi.json`).
pub fn json() -> String {
    serde_json::to_string_pretty(&*DOCUMENT).expect("a YAML value of JSON origin is JSON")
}

/// The spec as YAML (`/v1/openapi.yaml`, `openapi/v1.yaml`).
pub fn yaml() -> String {
    serde_yaml::to_string(&*DOCUMENT).expect("serializable")
}

/// Puts `tags` in [`TAG_ORDER`] and `components.securitySchemes` in [`SCHEME_ORDER`]; names
/// a list does not know keep their place after the known ones.
fn reorder(doc: &mut Value) {
    if let Some(Value::Sequence(tags)) = doc.get_mut("tags") {
        tags.sort_by_key(|t| rank(TAG_ORDER, t.get("name").and_then(Value::as_str)));
    }
    if let Some(Value::Mapping(schemes)) = doc
        .get_mut("components")
        .and_then(|c| c.get_mut("securitySchemes"))
    {
        sort_keys(schemes, |k| rank(SCHEME_ORDER, Some(k)));
    }
}

/// Adds `event_payloads`' schemas to `components.schemas`, keeping its alphabetical order.
fn add_event_payloads(doc: &mut Value) {
    let mut registry = poem_openapi::registry::Registry::new();
    super::event_payloads::register(&mut registry);
    let Some(Value::Mapping(schemas)) =
        doc.get_mut("components").and_then(|c| c.get_mut("schemas"))
    else {
        panic!("the document has components.schemas");
    };
    for name in super::event_payloads::NAMES {
        let schema = serde_yaml::to_value(&registry.schemas[*name]).expect("serializable");
        schemas.insert(Value::String((*name).to_owned()), schema);
    }
    sort_keys(schemas, str::to_owned);
}

/// Reorders `map` by `key` of its (string) keys; the sort is stable.
fn sort_keys<K: Ord>(map: &mut Mapping, key: impl Fn(&str) -> K) {
    let mut entries: Vec<(Value, Value)> = std::mem::take(map).into_iter().collect();
    entries.sort_by_key(|(k, _)| key(k.as_str().unwrap_or_default()));
    *map = entries.into_iter().collect();
}

fn rank(order: &[&str], name: Option<&str>) -> usize {
    name.and_then(|n| order.iter().position(|o| *o == n))
        .unwrap_or(order.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(seq: &Value) -> Vec<String> {
        seq.as_sequence()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn tags_and_schemes_follow_the_reader_and_cover_every_one() {
        let doc = &*DOCUMENT;
        assert_eq!(
            names(&doc["tags"]),
            TAG_ORDER,
            "a tag is missing from TAG_ORDER"
        );
        let schemes: Vec<_> = doc["components"]["securitySchemes"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(schemes, SCHEME_ORDER);
    }

    #[test]
    fn union_examples_are_set_and_valid() {
        use poem_openapi::types::ParseFromJSON;
        for (id, example) in union_examples() {
            let parsed = match id {
                "commands.create" => {
                    crate::api::commands::CommandIn::parse_from_json(Some(example.clone())).is_ok()
                }
                other => panic!("no request type known for {other}"),
            };
            assert!(parsed, "{id}: {example}");
            assert!(
                json().contains("\"kind\": \"click\""),
                "{id}'s example is not in the document"
            );
        }
    }

    #[test]
    fn json_and_yaml_are_the_same_document_as_poem_openapi_writes_but_for_order() {
        let mut ours: serde_json::Value = serde_json::from_str(&json()).unwrap();
        let from_yaml: serde_json::Value = serde_yaml::from_str(&yaml()).unwrap();
        assert_eq!(ours, from_yaml);
        let mut poem: serde_json::Value =
            serde_json::from_str(&super::super::service().spec()).unwrap();
        let schemas = ours["components"]["schemas"].as_object_mut().unwrap();
        for name in crate::api::event_payloads::NAMES {
            assert!(
                schemas.remove(*name).is_some(),
                "{name} is not in the document"
            );
        }
        for (id, _) in union_examples() {
            let op = ours["paths"]
                .as_object_mut()
                .unwrap()
                .values_mut()
                .flat_map(|item| item.as_object_mut().unwrap().values_mut())
                .find(|op| op["operationId"] == id)
                .unwrap();
            for media in op["requestBody"]["content"]
                .as_object_mut()
                .unwrap()
                .values_mut()
            {
                assert!(media.as_object_mut().unwrap().remove("example").is_some());
            }
        }
        for doc in [&mut ours, &mut poem] {
            doc["tags"]
                .as_array_mut()
                .unwrap()
                .sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        }
        assert_eq!(ours, poem);
    }
}
