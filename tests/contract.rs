//! The contract: the committed spec equals the generated one; it is served; every operation
//! has an operation id, tag, summary, description and described fields; Swagger UI is served
//! under its own CSP.

use serde_json::Value;

use crate::common::{Backend, TestApp};

#[test]
fn committed_spec_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/v1.yaml"))
            .expect("openapi/v1.yaml is committed");
    let generated = agentdesk::api::spec_yaml();
    assert!(
        committed == generated,
        "openapi/v1.yaml is stale: run `cargo run -- openapi --out openapi/v1.yaml` and commit it"
    );
}

#[test]
fn every_operation_and_field_is_documented() {
    let spec: Value = serde_json::from_str(&agentdesk::api::service().spec()).unwrap();
    let mut ids = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        assert!(path.starts_with("/v1/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            let (resource, verb) = id
                .split_once('.')
                .unwrap_or_else(|| panic!("{id}: not resource.verb"));
            assert!(!resource.is_empty() && !verb.is_empty());
            ids.push(id.to_owned());
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{id}: no tag"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{id}: no summary"
            );
            assert!(
                op["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{id}: no description"
            );
            for (status, resp) in op["responses"].as_object().unwrap() {
                assert!(
                    resp["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{id} {status}"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        resp["content"].get("application/problem+json").is_some(),
                        "{id} {status} not a problem"
                    );
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                assert!(
                    p["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{id}: parameter {} undescribed",
                    p["name"]
                );
            }
        }
    }
    let mut dedup = ids.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), ids.len(), "operation ids are unique");
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        for (field, prop) in schema["properties"].as_object().into_iter().flatten() {
            let described = prop["description"].as_str().is_some_and(|d| !d.is_empty())
                || prop["allOf"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|s| s["description"].is_string()));
            assert!(described, "{name}.{field} has no description");
        }
    }
}

#[tokio::test]
async fn spec_and_docs_are_served() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let json = app.get("/v1/openapi.json").expect(200).await;
    assert_eq!(json.body["info"]["version"], agentdesk::api::API_VERSION);
    assert!(json.body["components"]["securitySchemes"]["BearerAuth"].is_object());
    let yaml = app.get("/v1/openapi.yaml").expect(200).await;
    assert!(yaml.text.contains("operationId: orgs.create"));
    // `/docs` redirects to `/docs/` (the client follows it).
    assert!(app.get("/docs").expect(200).await.text.contains("swagger"));
    let docs = app.get("/docs/").expect(200).await;
    assert!(docs.text.contains("swagger"), "Swagger UI index");
    let csp = docs.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let init = app.get("/docs/swagger-initializer.js").expect(200).await;
    assert!(init.text.contains("/v1/openapi.json"));
    app.get("/docs/no-such-file.js")
        .expect(404)
        .await
        .assert_problem("route_not_found");
}
