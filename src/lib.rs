//! Agentdesk: the control plane for AI desktop agents.
//!
//! Layers (dependencies point one way): `api` (the poem-openapi contract) → `domain` (rules)
//! → `entity` (SeaORM tables); `api` → `auth`; `http` is transport only. See
//! `ARCHITECTURE.md` §3 and the README.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod entity;
pub mod error;
pub mod http;
pub mod jobs;
pub mod realtime;
pub mod runtime;

pub use app::{AppState, build_state, run_worker, serve};
pub use config::Config;
