//! Agentdesk: the control plane for AI desktop agents.
//!
//! Layers (dependencies point one way): `app` (wiring) → `api` (the poem-openapi contract)
//! → `domain` (rules) → `jobs`, `realtime`, `auth`, `blob` → `entity` (SeaORM tables); `jobs`
//! and `domain` → `desktop` (the RFB link) → `runtime` (where desktops come from); `http` is
//! transport only; `state`, `config`, `entity`, `error` are leaves. See the README's Layout
//! and `tests/layers.rs`, which keeps it so.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod blob;
pub mod config;
pub mod desktop;
pub mod domain;
pub mod entity;
pub mod error;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod realtime;
pub mod runtime;
pub mod state;

pub use app::{build_state, run_worker, serve};
pub use config::Config;
pub use state::AppState;
