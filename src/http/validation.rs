//! Strict, field-level checking of JSON request bodies against the operation's request schema
//! in the generated spec.
//!
//! poem-openapi reports a missing or mistyped field without its name, and it coerces numbers
//! and booleans into strings. [`precheck`] runs before it on every JSON body: `400
//! malformed_json` when the body is not JSON, `422 validation_failed` with
//! `errors: [{field, message}]` naming every field at fault (missing, wrong type, unknown
//! enum value, too long). [`diagnose`] is the fallback when poem-openapi still refuses a body.

use std::sync::LazyLock;

use serde_json::Value;

use crate::error::{AppError, FieldError, ProblemCode};

/// The contract as the request path reads it: the generated OpenAPI document (JSON), built
/// once at start-up from the API's spec and handed to the middlewares that need it (the body
/// check, 405 `Allow`, path parameter names, the idempotent operations).
#[derive(Debug)]
pub struct Contract {
    spec: Value,
}

impl Contract {
    /// Parses the spec (`OpenApiService::spec()`, JSON). Errors: not JSON.
    pub fn new(spec_json: &str) -> serde_json::Result<Self> {
        Ok(Self {
            spec: serde_json::from_str(spec_json)?,
        })
    }

    /// `(METHOD, /path/{template})` of every operation that declares the `Idempotency-Key`
    /// header parameter: the operations the idempotency middleware covers.
    pub fn idempotent_operations(&self) -> Vec<(String, String)> {
        let Some(paths) = self.spec.get("paths").and_then(Value::as_object) else {
            return Vec::new();
        };
        let mut ops = Vec::new();
        for (template, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let declares = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .is_some_and(|ps| {
                        ps.iter().any(|p| {
                            p.get("in").and_then(Value::as_str) == Some("header")
                                && p.get("name")
                                    .and_then(Value::as_str)
                                    .is_some_and(|n| n.eq_ignore_ascii_case("idempotency-key"))
                        })
                    });
                if declares {
                    ops.push((method.to_uppercase(), template.clone()));
                }
            }
        }
        ops.sort();
        ops
    }

    /// Checks a JSON `body` sent to `method` `path`. `None` when it conforms, or when the route
    /// has no JSON request body in the spec (routing will answer).
    pub fn precheck(&self, method: &str, path: &str, body: &[u8]) -> Option<AppError> {
        let schema = self.request_schema(method, path)?;
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return Some(AppError::BadRequest {
                    code: ProblemCode::MalformedJson,
                    detail: format!("the request body is not valid JSON: {e}"),
                    errors: vec![],
                });
            }
        };
        let mut errors = Vec::new();
        self.check(&value, schema, "", &mut errors);
        find_nul(&value, "", &mut errors);
        // One message per field: the first rule it breaks.
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert(e.field.clone()));
        (!errors.is_empty()).then_some(AppError::Validation(errors))
    }

    /// The problem for a body poem-openapi refused (`reason`): [`precheck`]'s answer when it has
    /// one, else a 422 carrying the parser's reason.
    pub fn diagnose(&self, method: &str, path: &str, body: &[u8], reason: &str) -> AppError {
        self.precheck(method, path, body).unwrap_or_else(|| {
            AppError::Validation(vec![FieldError::new("body", reason.to_owned())])
        })
    }

    /// The path template `path` falls on and its path item: a literal segment beats a
    /// template segment (`/v1/me` over `/v1/{x}`).
    fn route(&self, path: &str) -> Option<(&String, &serde_json::Map<String, Value>)> {
        self.spec
            .get("paths")?
            .as_object()?
            .iter()
            .filter(|(t, _)| template_matches(t, path))
            .min_by_key(|(t, _)| t.matches('{').count())
            .and_then(|(t, item)| Some((t, item.as_object()?)))
    }

    /// The methods the spec declares for the route `path` falls on, upper case (for `Allow` on
    /// a 405, RFC 9110 §10.2.1).
    pub fn allowed_methods(&self, path: &str) -> Vec<String> {
        self.route(path)
            .map(|(_, ops)| ops.keys().map(|m| m.to_uppercase()).collect())
            .unwrap_or_default()
    }

    /// The spec name of the `index`-th path parameter of the route `path` falls on (poem-openapi
    /// reports path parameters as `param0`, `param1`, …).
    pub fn path_param_name(&self, path: &str, index: usize) -> Option<String> {
        let (template, _) = self.route(path)?;
        template
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .nth(index)
            .map(str::to_owned)
    }

    /// What the parameter `name` (path, query or header; headers case-insensitively) of the
    /// route `path` falls on must be, in the field's terms ("must be a UUID", "must be an
    /// RFC 3339 date-time …", "must be one of: …"), read from its schema in the spec. `None`
    /// when the spec has no such parameter.
    pub fn parameter_expectation(&self, path: &str, name: &str) -> Option<String> {
        let (_, item) = self.route(path)?;
        let schema = item
            .values()
            .filter_map(|op| op.get("parameters")?.as_array())
            .flatten()
            .find(|p| {
                p.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })?
            .get("schema")?;
        Some(self.expectation(schema))
    }

    /// [`parameter_expectation`](Self::parameter_expectation) for one schema.
    fn expectation(&self, schema: &Value) -> String {
        let mut schema = self.resolve(schema);
        if let Some([only]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            schema = self.resolve(only);
        }
        let num = |k: &str| schema.get(k).and_then(Value::as_f64);
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            let list: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
            return format!("must be one of: {}", list.join(", "));
        }
        match (
            schema.get("type").and_then(Value::as_str),
            schema.get("format").and_then(Value::as_str),
        ) {
            (Some("string"), Some("uuid")) => {
                "must be a UUID, e.g. `0193a5c1-2f00-7000-8000-000000000001`".into()
            }
            (Some("string"), Some("date-time")) => {
                "must be an RFC 3339 date-time, e.g. `2026-11-29T12:00:00Z`".into()
            }
            (Some("integer"), _) => match (num("minimum"), num("maximum")) {
                (Some(min), Some(max)) => format!("must be an integer from {min} to {max}"),
                (Some(min), None) => format!("must be an integer of at least {min}"),
                _ if schema
                    .get("format")
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.starts_with('u')) =>
                {
                    "must be an integer of at least 0".into()
                }
                _ => "must be an integer".into(),
            },
            (Some("number"), _) => "must be a number".into(),
            (Some("boolean"), _) => "must be `true` or `false`".into(),
            _ => "has the wrong form (see the parameter's description in the spec)".into(),
        }
    }

    fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        let method = method.to_ascii_lowercase();
        let paths = self.spec.get("paths")?.as_object()?;
        paths
            .iter()
            .filter(|(t, item)| template_matches(t, path) && item.get(&method).is_some())
            // A literal segment beats a template segment (`/v1/me` over `/v1/{x}`).
            .min_by_key(|(t, _)| t.matches('{').count())?
            .1
            .get(&method)
    }

    /// Whether the operation `method` `path` falls on declares a security requirement.
    pub fn requires_auth(&self, method: &str, path: &str) -> bool {
        self.operation(method, path)
            .and_then(|op| op.get("security"))
            .and_then(Value::as_array)
            .is_some_and(|s| !s.is_empty())
    }

    fn request_schema(&self, method: &str, path: &str) -> Option<&Value> {
        let content = self
            .operation(method, path)?
            .get("requestBody")?
            .get("content")?
            .as_object()?;
        content
            .iter()
            .find(|(ct, _)| ct.starts_with("application/json"))
            .and_then(|(_, c)| c.get("schema"))
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut s = schema;
        for _ in 0..8 {
            match s
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                Some(name) => match self
                    .spec
                    .get("components")
                    .and_then(|c| c.get("schemas"))
                    .and_then(|c| c.get(name))
                {
                    Some(next) => s = next,
                    None => return s,
                },
                None => return s,
            }
        }
        s
    }

    fn check(&self, value: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let schema = self.resolve(schema);
        // A discriminated union (`oneOf` + `discriminator`): the property picks the variant.
        if let Some(d) = schema.get("discriminator")
            && let (Some(prop), Some(mapping)) = (
                d.get("propertyName").and_then(Value::as_str),
                d.get("mapping").and_then(Value::as_object),
            )
            && let Value::Object(obj) = value
        {
            match obj
                .get(prop)
                .and_then(Value::as_str)
                .and_then(|k| mapping.get(k))
            {
                Some(target) => {
                    self.check(value, &serde_json::json!({ "$ref": target }), path, errors)
                }
                None => {
                    let names: Vec<&str> = mapping.keys().map(String::as_str).collect();
                    errors.push(FieldError::new(
                        join(path, prop),
                        format!("must be one of: {}", names.join(", ")),
                    ));
                }
            }
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(value, s, path, errors);
            }
            return;
        }
        let field = if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        };
        let expect = schema.get("type").and_then(Value::as_str);
        let wrong = |what: &str, errors: &mut Vec<FieldError>| {
            errors.push(FieldError::new(
                &field,
                format!("must be {what}, not {}", type_name(value)),
            ));
        };
        match (expect, value) {
            (Some("object"), Value::Object(obj)) => {
                let props = schema.get("properties").and_then(Value::as_object);
                for req in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(name) = req.as_str()
                        && obj.get(name).is_none_or(Value::is_null)
                    {
                        errors.push(FieldError::new(join(path, name), "is required"));
                    }
                }
                let required = |name: &str| {
                    schema
                        .get("required")
                        .and_then(Value::as_array)
                        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(name)))
                };
                for (k, v) in obj {
                    let Some(p) = props.and_then(|p| p.get(k)) else {
                        continue;
                    };
                    if !v.is_null() {
                        self.check(v, p, &join(path, k), errors);
                    } else if !required(k)
                        && self.resolve(p).get("nullable") != Some(&Value::Bool(true))
                        && (self.resolve(p).get("type").is_some()
                            || self.resolve(p).get("allOf").is_some())
                    {
                        // Optional means "may be left out", not "may be null" (the spec has no
                        // nullable fields; an untyped "any" field takes null as a value): a null
                        // would otherwise be read as "unchanged".
                        errors.push(FieldError::new(
                            join(path, k),
                            "must not be null; leave the field out instead",
                        ));
                    }
                }
            }
            (Some("object"), _) => wrong("an object", errors),
            (Some("string"), Value::String(s)) => {
                let len = s.chars().count() as u64;
                if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                    && len > max
                {
                    errors.push(FieldError::new(
                        &field,
                        format!("must be at most {max} characters long"),
                    ));
                }
                if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                    && len < min
                {
                    errors.push(FieldError::new(
                        &field,
                        format!("must be at least {min} characters long"),
                    ));
                }
                if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                    && !pattern_matches(pattern, s)
                {
                    errors.push(FieldError::new(
                        &field,
                        "has the wrong form (see the field's description in the spec)",
                    ));
                }
                if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                    && !allowed.iter().any(|a| a.as_str() == Some(s))
                {
                    let list: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                    errors.push(FieldError::new(
                        &field,
                        format!("must be one of: {}", list.join(", ")),
                    ));
                }
                if schema.get("format").and_then(Value::as_str) == Some("uuid")
                    && uuid::Uuid::parse_str(s).is_err()
                {
                    errors.push(FieldError::new(&field, "must be a UUID"));
                }
            }
            (Some("string"), _) => wrong("a string", errors),
            (Some("integer"), Value::Number(n)) if n.is_i64() || n.is_u64() => {
                if let (Some(min), Some(v)) =
                    (schema.get("minimum").and_then(Value::as_f64), n.as_f64())
                    && v < min
                {
                    errors.push(FieldError::new(&field, format!("must be at least {min}")));
                }
                if let (Some(max), Some(v)) =
                    (schema.get("maximum").and_then(Value::as_f64), n.as_f64())
                    && v > max
                {
                    errors.push(FieldError::new(&field, format!("must be at most {max}")));
                }
            }
            (Some("integer"), _) => wrong("an integer", errors),
            (Some("number"), Value::Number(_)) => {}
            (Some("number"), _) => wrong("a number", errors),
            (Some("boolean"), Value::Bool(_)) => {}
            (Some("boolean"), _) => wrong("a boolean", errors),
            (Some("array"), Value::Array(items)) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, item_schema, &format!("{field}[{i}]"), errors);
                    }
                }
            }
            (Some("array"), _) => wrong("an array", errors),
            _ => {}
        }
    }
}

/// NUL (U+0000) anywhere in a string or an object key: PostgreSQL stores neither in `text`
/// nor in `jsonb`, so it is refused up front, naming the field, on every backend alike.
fn find_nul(value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let field = |p: &str| {
        if p.is_empty() {
            "body".to_owned()
        } else {
            p.to_owned()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => errors.push(FieldError::new(
            field(path),
            "must not contain the NUL character (U+0000)",
        )),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_nul(v, &format!("{}[{i}]", field(path)), errors);
            }
        }
        Value::Object(obj) => {
            for (k, v) in obj {
                let p = join(path, k);
                if k.contains('\0') {
                    errors.push(FieldError::new(
                        field(&p),
                        "key must not contain the NUL character (U+0000)",
                    ));
                } else {
                    find_nul(v, &p, errors);
                }
            }
        }
        _ => {}
    }
}

/// Whether a spec path template (`/v1/orgs/{org_id}`) matches a request path.
pub fn template_matches(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') && !ps.is_empty() => {}
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return false,
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Whether `s` matches the spec's `pattern` (compiled once per pattern). A pattern that does
/// not compile never rejects (poem-openapi, which compiled it too, would have refused to start).
fn pattern_matches(pattern: &str, s: &str) -> bool {
    static CACHE: LazyLock<
        std::sync::Mutex<std::collections::HashMap<String, Option<regex::Regex>>>,
    > = LazyLock::new(Default::default);
    let Ok(mut cache) = CACHE.lock() else {
        return true;
    };
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .as_ref()
        .is_none_or(|re| re.is_match(s))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_named() {
        let mut errors = Vec::new();
        let v: Value = serde_json::from_str(
            r#"{"events": [{"kind": "log", "payload": {"a\u0000": 1, "b": "x\u0000"}}]}"#,
        )
        .unwrap();
        find_nul(&v, "", &mut errors);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["events[0].payload.a\0", "events[0].payload.b"]);
    }

    #[test]
    fn templates_match_segment_by_segment() {
        assert!(template_matches("/v1/orgs/{org_id}", "/v1/orgs/abc"));
        assert!(!template_matches("/v1/orgs/{org_id}", "/v1/orgs/"));
        assert!(!template_matches("/v1/orgs/{org_id}", "/v1/orgs/a/members"));
    }
}
