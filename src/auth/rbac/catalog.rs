//! The permission catalog: the permission names (`object:action`) and [`PERMISSIONS`], the
//! agent capability catalog [`CAPABILITIES`], the built-in [`Role`]s and their permission table
//! [`BUILTIN_ROLES`].
//!
//! Pure data and lookups: nothing here knows casbin, its rules or the database. How these
//! names become casbin rules lives in `policies`; deciding requests lives in `enforcer`.

/// Read the organization (`orgs.get`).
pub const ORGS_READ: &str = "orgs:read";
/// Rename the organization (`orgs.update`).
pub const ORGS_WRITE: &str = "orgs:write";
/// Delete the organization (`orgs.delete`).
pub const ORGS_DELETE: &str = "orgs:delete";
/// List members (`members.list`).
pub const MEMBERS_READ: &str = "members:read";
/// Add, change and remove non-owner members (`members.add`, `members.update`, `members.remove`).
pub const MEMBERS_WRITE: &str = "members:write";
/// Grant or take the `owner` role.
pub const MEMBERS_OWNER: &str = "members:owner";
/// Read the audit log (`audit.list`).
pub const AUDIT_READ: &str = "audit:read";

/// Read agents (`agents.list`, `agents.get`).
pub const AGENTS_READ: &str = "agents:read";
/// Create, change and delete agents and their capabilities.
pub const AGENTS_WRITE: &str = "agents:write";
/// Read sessions, their event logs and streams, and their commands.
pub const SESSIONS_READ: &str = "sessions:read";
/// Start and stop sessions; append events.
pub const SESSIONS_WRITE: &str = "sessions:write";
/// Send commands to a session's desktop (`commands.create`).
pub const COMMANDS_WRITE: &str = "commands:write";
/// Act as a session's executor: claim commands and report results.
pub const COMMANDS_EXECUTE: &str = "commands:execute";
/// Take control of a session's live desktop: a `control` ticket for `desktop.connect`
/// (pointer and keyboard reach the desktop). Watching needs only [`SESSIONS_READ`].
pub const DESKTOP_CONTROL: &str = "desktop:control";
/// Read the org's background jobs, including dead ones.
pub const JOBS_READ: &str = "jobs:read";
/// Re-drive dead jobs (`jobs.retry`).
pub const JOBS_WRITE: &str = "jobs:write";
/// List the org's roles, built-in and custom (`roles.list`, `roles.get`).
pub const ROLES_READ: &str = "roles:read";
/// Create, change and delete custom roles.
pub const ROLES_WRITE: &str = "roles:write";
/// List the org's API keys (never their secrets).
pub const API_KEYS_READ: &str = "api_keys:read";
/// Create and revoke API keys.
pub const API_KEYS_WRITE: &str = "api_keys:write";

/// The permission catalog: `(name, description)`.
pub const PERMISSIONS: &[(&str, &str)] = &[
    (ORGS_READ, "Read the organization."),
    (ORGS_WRITE, "Change the organization's settings."),
    (ORGS_DELETE, "Delete the organization and everything in it."),
    (MEMBERS_READ, "List members and their roles."),
    (
        MEMBERS_WRITE,
        "Add members, change their roles (except owner), remove them.",
    ),
    (MEMBERS_OWNER, "Grant or take the owner role."),
    (AUDIT_READ, "Read the organization's audit log."),
    (AGENTS_READ, "Read agents and their capabilities."),
    (
        AGENTS_WRITE,
        "Create, change and delete agents and their capabilities.",
    ),
    (
        SESSIONS_READ,
        "Read sessions, their event logs, live streams and commands.",
    ),
    (SESSIONS_WRITE, "Start and stop sessions; append events."),
    (COMMANDS_WRITE, "Send commands to a session's desktop."),
    (
        COMMANDS_EXECUTE,
        "Claim a session's commands and report their results (the desktop-side executor).",
    ),
    (
        DESKTOP_CONTROL,
        "Take control of a session's live desktop (pointer and keyboard) in the console.",
    ),
    (
        JOBS_READ,
        "Read background jobs, including dead-lettered ones.",
    ),
    (JOBS_WRITE, "Re-drive dead-lettered jobs."),
    (
        ROLES_READ,
        "List the organization's built-in and custom roles.",
    ),
    (ROLES_WRITE, "Create, change and delete custom roles."),
    (
        API_KEYS_READ,
        "List API keys (name, prefix, role, use; never the secret).",
    ),
    (API_KEYS_WRITE, "Create and revoke API keys."),
];

/// The agent capability catalog: `(name, description)`. A capability is a casbin `p` rule
/// `agent:<id>, org:<org>, <object>, <action>` for the name `<object>:<action>`.
pub const CAPABILITIES: &[(&str, &str)] = &[
    ("desktop:screen.capture", "Take screenshots of the desktop."),
    (
        "desktop:input.pointer",
        "Move, click and scroll the pointer.",
    ),
    ("desktop:input.keyboard", "Type text and press keys."),
    ("desktop:clipboard", "Set the desktop clipboard."),
    ("desktop:shell", "Run shell commands on the desktop."),
    ("desktop:files", "Read and write files on the desktop."),
    ("browser:navigate", "Open URLs in the desktop's browser."),
];

/// A built-in role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including deleting the org and managing owners.
    Owner,
    /// Manages the org, members (not owners) and reads the audit log.
    Admin,
    /// Runs sessions and commands; reads the org, its members and agents.
    Operator,
    /// Reads the org and its members.
    Viewer,
}

/// The permission table: which built-in role holds which permission.
pub const BUILTIN_ROLES: &[(Role, &[&str])] = &[
    (
        Role::Owner,
        &[
            ORGS_READ,
            ORGS_WRITE,
            ORGS_DELETE,
            MEMBERS_READ,
            MEMBERS_WRITE,
            MEMBERS_OWNER,
            AUDIT_READ,
            AGENTS_READ,
            AGENTS_WRITE,
            SESSIONS_READ,
            SESSIONS_WRITE,
            COMMANDS_WRITE,
            COMMANDS_EXECUTE,
            DESKTOP_CONTROL,
            JOBS_READ,
            JOBS_WRITE,
            ROLES_READ,
            ROLES_WRITE,
            API_KEYS_READ,
            API_KEYS_WRITE,
        ],
    ),
    (
        Role::Admin,
        &[
            ORGS_READ,
            ORGS_WRITE,
            MEMBERS_READ,
            MEMBERS_WRITE,
            AUDIT_READ,
            AGENTS_READ,
            AGENTS_WRITE,
            SESSIONS_READ,
            SESSIONS_WRITE,
            COMMANDS_WRITE,
            COMMANDS_EXECUTE,
            DESKTOP_CONTROL,
            JOBS_READ,
            JOBS_WRITE,
            ROLES_READ,
            ROLES_WRITE,
            API_KEYS_READ,
            API_KEYS_WRITE,
        ],
    ),
    (
        Role::Operator,
        &[
            ORGS_READ,
            MEMBERS_READ,
            AGENTS_READ,
            SESSIONS_READ,
            SESSIONS_WRITE,
            COMMANDS_WRITE,
            COMMANDS_EXECUTE,
            DESKTOP_CONTROL,
            ROLES_READ,
        ],
    ),
    (
        Role::Viewer,
        &[
            ORGS_READ,
            MEMBERS_READ,
            AGENTS_READ,
            SESSIONS_READ,
            ROLES_READ,
        ],
    ),
];

impl Role {
    /// Every built-in role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Operator, Role::Viewer];

    /// The stored name (`owner`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role's permissions from [`BUILTIN_ROLES`].
    pub fn permissions(self) -> &'static [&'static str] {
        BUILTIN_ROLES
            .iter()
            .find(|(r, _)| *r == self)
            .map(|(_, p)| *p)
            .unwrap_or(&[])
    }
}

/// Whether `name` is a permission in [`PERMISSIONS`].
pub fn is_permission(name: &str) -> bool {
    PERMISSIONS.iter().any(|(n, _)| *n == name)
}

/// The permissions of the built-in role `name`, or `None` when it is not a built-in role.
pub fn builtin_permissions(name: &str) -> Option<&'static [&'static str]> {
    Role::parse(name).map(Role::permissions)
}

/// Whether `name` is in [`CAPABILITIES`].
pub fn is_capability(name: &str) -> bool {
    CAPABILITIES.iter().any(|(n, _)| *n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_table_is_consistent() {
        for (role, perms) in BUILTIN_ROLES {
            for p in *perms {
                assert!(
                    PERMISSIONS.iter().any(|(n, _)| n == p),
                    "{role:?} has unknown {p}"
                );
            }
        }
        // Each role holds a subset of the permissions of every role above it.
        for pair in Role::ALL.windows(2) {
            for p in pair[1].permissions() {
                assert!(
                    pair[0].permissions().contains(p),
                    "{:?} lacks {p} of {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }
}
