//! Agentdesk integration tests: one binary, the real server on 127.0.0.1:0, SQLite always and
//! PostgreSQL when `AGENTDESK_TEST_POSTGRES_URL` is set (CI sets it).

mod common;

mod access;
mod accounts;
mod artifacts;
mod contract;
mod desktop;
mod desktop_link;
mod grants;
mod jobs;
mod layers;
mod oidc;
mod orgs;
mod platform;
mod quotas;
mod reads;
mod relay;
mod request_path;
mod sessions;
mod signup;
mod trust;
