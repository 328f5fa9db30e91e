//! Typed ids for the ids that travel together through the session, event and command paths
//! (`org_id`, `session_id`, `command_id`): distinct newtypes over the UUIDv7, so a session id
//! can never be passed where an org id is meant. They convert to and from [`Uuid`] at the
//! edges (path parameters, rows) and are accepted by SeaORM filters as values.

use std::fmt;

use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl From<$name> for sea_orm::Value {
            fn from(id: $name) -> Self {
                id.0.into()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(
    /// An organization's id.
    OrgId
);
typed_id!(
    /// A session's id.
    SessionId
);
typed_id!(
    /// A command's id.
    CommandId
);
