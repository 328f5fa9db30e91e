//! Configuration loading and validation.

use super::*;

fn with(toml: &str) -> Result<Config, ConfigError> {
    Config::from_figment(
        Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml)),
    )
}

#[test]
fn defaults_are_valid() {
    let c = with("").unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert!(c.database_url().starts_with("sqlite://"));
}

#[test]
fn errors_name_the_key() {
    let e = with("body_limit_bytes = \"lots\"").unwrap_err().to_string();
    assert!(e.contains("body_limit_bytes"), "{e}");
    let e = with("listen = \"nowhere\"").unwrap_err().to_string();
    assert!(e.contains("`listen`"), "{e}");
    let e = with("cors_allowed_origins = [\"https://a.example/path\"]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cors_allowed_origins"), "{e}");
    let e = with("jwt_signing_key = \"short\"").unwrap_err().to_string();
    assert!(e.contains("jwt_signing_key"), "{e}");
    let e = with("desktop_runtime = \"process\"\ndesktop_vnc_host = \"10.0.0.5\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("desktop_vnc_host"), "{e}");
    let e = with("desktop_runtime = \"kubernetes\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("desktop_runtime"), "{e}");
    let e = with("job_backoff_max_ms = 10").unwrap_err().to_string();
    assert!(e.contains("job_backoff_max_ms"), "{e}");
    let e = with("no_such_knob = 1").unwrap_err().to_string();
    assert!(e.contains("no_such_knob"), "{e}");
    let e = with("public_url = \"https://api.example.com/\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("public_url"), "{e}");
    let provider = "[oidc_providers.corp]\nissuer_url = \"https://id.example.com\"\nclient_id = \"a\"\nclient_secret = \"b\"\n";
    let e = with(provider).unwrap_err().to_string();
    assert!(
        e.contains("oidc_providers.corp") && e.contains("redirect_uris"),
        "{e}"
    );
    let e = with(&format!("{provider}redirect_uris = []"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("oidc_providers.corp.redirect_uris"), "{e}");
    let ok = with(&format!(
        "{provider}redirect_uris = [\"https://app.example.com/sso\"]"
    ))
    .unwrap();
    assert_eq!(
        ok.oidc_providers["corp"].scopes,
        ["openid", "email", "profile"]
    );
    let e = with(&format!("{provider}redirect_uris = [\"x\"]\ncolour = 1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn the_auth_cache_ttl_keeps_its_former_name() {
    assert_eq!(with("").unwrap().auth_cache_ttl_s, 60);
    assert_eq!(with("auth_cache_ttl_s = 5").unwrap().auth_cache_ttl_s, 5);
    assert_eq!(with("api_key_cache_ttl_s = 7").unwrap().auth_cache_ttl_s, 7);
}
