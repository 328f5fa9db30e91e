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
            // A bare `$ref` (kept bare so generators keep a union's discriminator) is described
            // by the schema it points at.
            let referenced = prop["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .is_some_and(|r| spec["components"]["schemas"][r]["description"].is_string());
            let described = prop["description"].as_str().is_some_and(|d| !d.is_empty())
                || referenced
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
    // Served as ordered for readers: tags by the getting-started flow, Bearer first.
    assert_eq!(json.text, agentdesk::api::spec::json());
    let tags: Vec<&str> = json.body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags[..5],
        ["Auth", "Me", "Organizations", "Agents", "Sessions"]
    );
    let schemes = &json.text[json.text.find("\"securitySchemes\"").unwrap()..];
    assert!(
        schemes.find("\"BearerAuth\"").unwrap() < schemes.find("\"ApiKeyAuth\"").unwrap(),
        "BearerAuth is not listed first"
    );
    // Every code the server can send is in the spec's closed list, with the routing ones.
    let codes: Vec<&str> = json.body["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let listed: Vec<&str> = agentdesk::error::ProblemCode::ALL
        .iter()
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(codes, listed);
    assert!(codes.contains(&"route_not_found") && codes.contains(&"method_not_allowed"));
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

/// The two halves of a deprecation stay together: every operation marked `deprecated: true`
/// in the spec has a row in `api::DEPRECATED_OPERATIONS` (its sunset and link), and every row
/// names a deprecated operation.
#[test]
fn deprecated_operations_match_their_table() {
    let spec: Value = serde_json::from_str(&agentdesk::api::service().spec()).unwrap();
    let mut marked = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["deprecated"] == true {
                marked.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut table: Vec<_> = agentdesk::api::deprecations()
        .iter()
        .map(|d| (d.method.to_owned(), d.path.to_owned()))
        .collect();
    marked.sort();
    table.sort();
    assert_eq!(marked, table);
    for d in agentdesk::api::deprecations() {
        assert!(d.sunset_at > d.deprecated_at, "{d:?}");
    }
}

/// The mechanism end to end on a test-only operation: `#[oai(deprecated)]` marks the spec,
/// the middleware adds `Deprecation`, `Sunset` and `Link` to its responses, and only to its.
#[tokio::test]
async fn deprecation_headers_on_a_deprecated_operation() {
    use agentdesk::http::deprecation::{Deprecation, Deprecations};
    use poem::{Endpoint, EndpointExt, Request, Route};
    use poem_openapi::{OpenApi, OpenApiService, payload::PlainText};

    struct LegacyApi;
    #[OpenApi]
    impl LegacyApi {
        /// Old
        ///
        /// Replaced by `current.get`.
        #[oai(
            path = "/v1/legacy/:id",
            method = "get",
            operation_id = "legacy.get",
            deprecated
        )]
        async fn legacy(&self, id: poem_openapi::param::Path<String>) -> PlainText<String> {
            PlainText(id.0)
        }

        /// Current
        ///
        /// The replacement.
        #[oai(path = "/v1/current", method = "get", operation_id = "current.get")]
        async fn current(&self) -> PlainText<&'static str> {
            PlainText("new")
        }
    }

    let service = OpenApiService::new(LegacyApi, "test", "1");
    let spec: Value = serde_json::from_str(&service.spec()).unwrap();
    assert_eq!(spec["paths"]["/v1/legacy/{id}"]["get"]["deprecated"], true);
    assert!(
        spec["paths"]["/v1/current"]["get"]
            .get("deprecated")
            .is_none()
    );

    let app = Route::new()
        .nest_no_strip("/v1", service)
        .with(Deprecations::new(vec![Deprecation {
            method: "GET",
            path: "/v1/legacy/{id}",
            deprecated_at: 1_767_225_600,
            sunset_at: 1_782_864_000,
            link: "https://docs.example/migrate-legacy",
        }]));
    let resp = app
        .call(
            Request::builder()
                .uri("/v1/legacy/7".parse().unwrap())
                .finish(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(h("deprecation").as_deref(), Some("@1767225600"));
    assert_eq!(
        h("sunset").as_deref(),
        Some("Wed, 01 Jul 2026 00:00:00 GMT")
    );
    assert_eq!(
        h("link").as_deref(),
        Some("<https://docs.example/migrate-legacy>; rel=\"deprecation\"")
    );
    let resp = app
        .call(
            Request::builder()
                .uri("/v1/current".parse().unwrap())
                .finish(),
        )
        .await
        .unwrap();
    assert!(resp.headers().get("deprecation").is_none());
    assert!(resp.headers().get("sunset").is_none());
}

/// The README's permission table lists exactly the catalog, with each built-in role's ✓ as in
/// `rbac::BUILTIN_ROLES`, and names every operation that checks the permission.
#[test]
fn readme_permission_table() {
    use agentdesk::auth::rbac::{PERMISSIONS, Role};
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("## Roles and permissions")
        .nth(1)
        .and_then(|s| s.split("### API keys").next())
        .expect("README has the roles section");
    let mut rows = Vec::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `perm` | what | owner | admin | operator | viewer |
        if cells.len() == 8 && cells[1].starts_with('`') {
            let perm = cells[1].trim_matches('`').to_owned();
            let held: Vec<bool> = cells[3..7].iter().map(|c| *c == "✓").collect();
            rows.push((perm, held));
        }
    }
    let names: Vec<&str> = rows.iter().map(|(p, _)| p.as_str()).collect();
    let catalog: Vec<&str> = PERMISSIONS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, catalog, "README rows must follow rbac::PERMISSIONS");
    for (perm, held) in &rows {
        for (i, role) in Role::ALL.iter().enumerate() {
            assert_eq!(
                held[i],
                role.permissions().contains(&perm.as_str()),
                "README says {role:?} {} {perm}",
                if held[i] { "holds" } else { "lacks" }
            );
        }
    }
}

/// The request path's reading of the spec, checked against the real spec.
fn contract() -> agentdesk::http::validation::Contract {
    agentdesk::http::validation::Contract::new(&agentdesk::api::service().spec()).unwrap()
}

fn fields(method: &str, path: &str, body: &str) -> Vec<String> {
    use agentdesk::error::AppError;
    match contract().diagnose(method, path, body.as_bytes(), "poem reason") {
        AppError::Validation(errors) => errors
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect(),
        AppError::BadRequest { code, .. } => vec![code.as_str().to_owned()],
        other => panic!("{other:?}"),
    }
}

#[test]
fn body_check_names_missing_and_mistyped_fields() {
    let f = fields(
        "POST",
        "/v1/auth/register",
        r#"{"email": 5, "password": "x"}"#,
    );
    assert!(f.contains(&"display_name: is required".to_owned()), "{f:?}");
    assert!(
        f.contains(&"email: must be a string, not a number".to_owned()),
        "{f:?}"
    );
    let f = fields(
        "POST",
        "/v1/orgs/01a1fba1-a77c-7119-a5ac-506fd05db190/members",
        r#"{"email": "a@b.c", "role": "King of all"}"#,
    );
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].starts_with("role: has the wrong form"), "{f:?}");
    let f = fields(
        "POST",
        "/v1/orgs",
        &format!(r#"{{"name": "{}"}}"#, "n".repeat(201)),
    );
    assert_eq!(
        f,
        vec!["name: must be at most 200 characters long".to_owned()]
    );
    let f = fields("POST", "/v1/orgs", "[1]");
    assert_eq!(f, vec!["body: must be an object, not an array".to_owned()]);
    assert_eq!(
        fields("POST", "/v1/orgs", "{bad"),
        vec!["malformed_json".to_owned()]
    );
    // No schema for the route: the parser's reason stands.
    assert_eq!(
        fields("POST", "/nowhere", "{}"),
        vec!["body: poem reason".to_owned()]
    );
    let c = contract();
    assert!(
        c.precheck("POST", "/v1/orgs", br#"{"name": "ok"}"#)
            .is_none()
    );
    assert!(
        c.precheck("POST", "/v1/orgs", br#"{"name": 42}"#).is_some(),
        "no coercion to string"
    );
    assert!(
        c.precheck("GET", "/v1/orgs", b"").is_none(),
        "no body schema"
    );
    assert_eq!(
        c.path_param_name("/v1/orgs/x/members/y", 1).as_deref(),
        Some("user_id")
    );
}

/// One source for the idempotent operations: the middleware covers exactly the operations
/// whose spec declares the `Idempotency-Key` header, and those are the ones the README and
/// ARCHITECTURE §4 promise.
#[test]
fn idempotent_operations_come_from_the_spec() {
    let ops = contract().idempotent_operations();
    let spec: Value = serde_json::from_str(&agentdesk::api::service().spec()).unwrap();
    let ids: Vec<String> = ops
        .iter()
        .map(|(m, t)| {
            spec["paths"][t][m.to_lowercase()]["operationId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut ids = ids;
    ids.sort();
    assert_eq!(
        ids,
        [
            "agents.create",
            "commands.create",
            "events.append",
            "sessions.create",
            "sessions.stop"
        ]
    );
}
