//! The web console at `/console/`: a small operator app (sign in, sessions with live status,
//! the live desktop through `desktop.connect`, the event timeline, chat and commands) built
//! from `console/` with esbuild and embedded here at compile time from `console/dist/` (three
//! files, committed, rebuilt and compared in CI). Served under [`CONSOLE_CSP`]: scripts,
//! styles and connections to this origin only, no inline script or style.

use poem::{Response, handler, web::Redirect};

/// CSP of the console: its own script and stylesheet only (no inline script or style
/// elements), images from itself, `data:` (noVNC's cursor) and `blob:` (screenshot
/// thumbnails), fetches and WebSockets to this origin only, never framed.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// The embedded files: `(name under /console/, media type, bytes)`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("../../console/dist/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/dist/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/dist/console.css"),
    ),
];

/// `GET /console` → redirect to `/console/`.
#[handler]
pub fn console_root() -> Redirect {
    Redirect::moved_permanent("/console/")
}

/// `GET /console/` and `GET /console/*path`: the embedded files (`no-cache`: revalidated,
/// as their names carry no hash); 404 for anything else.
#[handler]
pub fn console_file(req: &poem::Request) -> poem::Result<Response> {
    let name = req.uri().path().strip_prefix("/console/").unwrap_or("");
    let (_, media_type, bytes) = FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(poem::error::NotFoundError)?;
    Ok(Response::builder()
        .content_type(*media_type)
        .header("cache-control", "no-cache")
        .body(*bytes))
}
