//! Authentication and authorization: argon2id passwords, access JWTs and opaque refresh
//! tokens, the bearer security scheme and the casbin RBAC enforcer with its SeaORM adapter.
//! Nothing here knows about orgs' business rules; `domain/` calls in.

pub mod password;
pub mod rbac;
pub mod tokens;
