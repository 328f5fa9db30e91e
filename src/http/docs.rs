//! Swagger UI at `/docs/` (utoipa-swagger-ui, vendored: no download at build or run time),
//! listing the v1 spec at `/v1/openapi.json`, with bearer auth persisted in the page.

use std::sync::{Arc, LazyLock};

use poem::{
    Response, handler,
    http::StatusCode,
    web::{Path, Redirect},
};
use utoipa_swagger_ui::Config;

static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::new([utoipa_swagger_ui::Url::new(
            "Agentdesk API v1",
            "/v1/openapi.json",
        )])
        .persist_authorization(true)
        .deep_linking(true)
        .try_it_out_enabled(true),
    )
});

/// `GET /docs` → redirect to `/docs/`.
#[handler]
pub fn docs_root() -> Redirect {
    Redirect::moved_permanent("/docs/")
}

/// `GET /docs/` → Swagger UI's index.
#[handler]
pub fn docs_index() -> poem::Result<Response> {
    serve("")
}

/// `GET /docs/*path` → Swagger UI's files.
#[handler]
pub fn docs_file(Path(path): Path<String>) -> poem::Result<Response> {
    serve(&path)
}

fn serve(path: &str) -> poem::Result<Response> {
    let path = if path.is_empty() { "index.html" } else { path };
    match utoipa_swagger_ui::serve(path, CONFIG.clone()) {
        Ok(Some(file)) => Ok(Response::builder()
            .content_type(file.content_type)
            .header("cache-control", "no-cache")
            .body(file.bytes.to_vec())),
        Ok(None) => Err(poem::error::NotFoundError.into()),
        Err(e) => Err(poem::Error::from_string(
            format!("swagger ui: {e}"),
            StatusCode::INTERNAL_SERVER_ERROR,
        )),
    }
}
