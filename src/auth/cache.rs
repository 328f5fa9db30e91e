//! The node's cache of what every authenticated request reads (ARCHITECTURE §3, "One request
//! path"): verified access tokens, accounts' access-token state, memberships, organization
//! rows, custom roles' permissions, verified API keys and casbin decisions. A warm authenticated read costs a
//! JWT check (or a SHA-256) and a few map lookups, no database read.
//!
//! **Invalidated through the bus, not by time.** Every change that could alter a decision
//! reaches the cache as an [`Invalidation`]:
//!
//! * on the node that made it, right after its commit (`Rbac::apply`, the account and org
//!   writers), so the writer's next request sees it;
//! * on every node, PostgreSQL triggers on `users`, `memberships`, `organizations`,
//!   `api_keys` and `casbin_rule` `NOTIFY agentdesk_auth` inside the writing transaction
//!   (delivered if and only if it commits, whichever code path wrote the row); each node's
//!   bus listener applies them as it reads them. On SQLite there is one node and the first
//!   path is the only one.
//!
//! A verified access token is a fact about its bytes (signature, issuer, audience, expiry),
//! not about the database: it is kept until it expires, keyed by the whole token, and its
//! account's token generation is still checked on every request.
//!
//! The TTL (`auth_cache_ttl_s`, default 60 s) is only a backstop. Two rules make "no decision
//! is served from an entry older than the last invalidation it should have seen" hold:
//!
//! * **epochs**: every invalidation bumps [`AuthCache::epoch`]; a reader takes the epoch
//!   before it reads the database ([`AuthCache::begin`]) and its result is stored only if no
//!   invalidation came in between ([`Fill`]), so a read that raced a change is used once and
//!   never cached;
//! * **liveness**: on PostgreSQL the cache is bypassed while the LISTEN connection is down
//!   (invalidations may be missed) and emptied when it is re-established
//!   ([`AuthCache::set_live`]).

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{auth::Subject, entity::organization};

/// PostgreSQL channel the auth triggers notify on.
pub const AUTH_CHANNEL: &str = "agentdesk_auth";

/// What changed, as far as the cache is concerned. On the wire (the triggers' NOTIFY payload):
/// `u:<user>`, `m:<org>:<user>`, `o:<org>`, `k:<key>`, `r:<org>` or `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// An account's access-token generation, `disabled_at` or `deleted_at` changed (logout,
    /// password change, token reuse, disable, erase).
    User(Uuid),
    /// A user's membership of an org was added, changed or removed.
    Member {
        /// The org.
        org_id: Uuid,
        /// The member.
        user_id: Uuid,
    },
    /// An org row changed or was deleted (everything cached under it goes).
    Org(Uuid),
    /// An API key was revoked, changed or deleted.
    Key(Uuid),
    /// A custom role of an org was created, changed or deleted.
    Roles(Uuid),
    /// Anything may have changed (built-in roles rewritten, notifications lost).
    All,
}

impl Invalidation {
    /// The wire form (see the type's doc).
    pub fn encode(&self) -> String {
        match self {
            Invalidation::User(id) => format!("u:{id}"),
            Invalidation::Member { org_id, user_id } => format!("m:{org_id}:{user_id}"),
            Invalidation::Org(id) => format!("o:{id}"),
            Invalidation::Key(id) => format!("k:{id}"),
            Invalidation::Roles(id) => format!("r:{id}"),
            Invalidation::All => "*".into(),
        }
    }

    /// Parses the wire form. Anything unreadable is [`Invalidation::All`]: a notification
    /// that cannot be understood must still invalidate.
    pub fn decode(s: &str) -> Self {
        let id = |s: &str| Uuid::parse_str(s).ok();
        let parsed = match s.split_once(':') {
            Some(("u", rest)) => id(rest).map(Invalidation::User),
            Some(("o", rest)) => id(rest).map(Invalidation::Org),
            Some(("k", rest)) => id(rest).map(Invalidation::Key),
            Some(("r", rest)) => id(rest).map(Invalidation::Roles),
            Some(("m", rest)) => rest.split_once(':').and_then(|(o, u)| {
                Some(Invalidation::Member {
                    org_id: id(o)?,
                    user_id: id(u)?,
                })
            }),
            _ => None,
        };
        parsed.unwrap_or(Invalidation::All)
    }
}

/// An account's state as access tokens need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountState {
    /// No such account.
    Missing,
    /// Disabled or erased.
    Closed,
    /// Usable; tokens of this generation are current.
    Open {
        /// `users.token_generation`.
        token_generation: i64,
    },
}

/// A verified API key, as cached (keyed by the SHA-256 of the whole presented key).
#[derive(Clone, Debug)]
pub struct VerifiedKey {
    /// What the key acts as.
    pub subject: Subject,
    /// The key's id.
    pub key_id: Uuid,
    /// When it expires (checked on every request, cached or not).
    pub expires_at: Option<DateTime<Utc>>,
    /// Last recorded use (UTC), so `last_used_at` is written at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
struct Entry<V> {
    value: V,
    at: Instant,
}

#[derive(Default)]
struct Maps {
    accounts: HashMap<Uuid, Entry<AccountState>>,
    /// `(org, user)` → the member's role, `None` for "not a member".
    members: HashMap<(Uuid, Uuid), Entry<Option<String>>>,
    orgs: HashMap<Uuid, Entry<organization::Model>>,
    /// org → custom role name → its stored permissions.
    roles: HashMap<Uuid, HashMap<String, Entry<Vec<String>>>>,
    keys: HashMap<[u8; 32], Entry<VerifiedKey>>,
    /// org → role → permission → casbin's decision.
    decisions: HashMap<Uuid, HashMap<String, HashMap<String, Entry<bool>>>>,
}

impl Maps {
    fn len(&self) -> usize {
        self.accounts.len()
            + self.members.len()
            + self.orgs.len()
            + self.roles.len()
            + self.keys.len()
            + self.decisions.len()
    }
}

/// Most entries per map kind before the cache is emptied (a crude bound; a node serving more
/// distinct callers than this within a TTL just reads the database more often).
const MAX_ENTRIES: usize = 50_000;

/// The epoch a reader took before reading the database; give it back to [`AuthCache`]'s
/// `put_*` methods. `None` while the cache is bypassed.
#[derive(Clone, Copy, Debug)]
pub struct Fill(Option<u64>);

/// The per-node cache. One per node, shared by the authenticator, authorization, the RBAC
/// enforcer (which invalidates after commits) and the bus listener (which invalidates on
/// other nodes' commits).
pub struct AuthCache {
    ttl: Duration,
    epoch: AtomicU64,
    live: AtomicBool,
    maps: RwLock<Maps>,
    tokens: RwLock<HashMap<Box<str>, VerifiedToken>>,
}

/// What a verified access token says, kept until it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The account (`sub`).
    pub user_id: Uuid,
    /// The account's token generation at issue (`gen`).
    pub generation: i64,
    /// Expiry (`exp`, Unix seconds).
    pub expires_at: i64,
}

impl AuthCache {
    /// A cache whose entries are served for at most `ttl` (zero: nothing is cached). `live`:
    /// whether it may be used before the bus says so (true on SQLite; on PostgreSQL false
    /// until the LISTEN connection is up).
    pub fn new(ttl: Duration, live: bool) -> Self {
        Self {
            ttl,
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(live),
            maps: RwLock::new(Maps::default()),
            tokens: RwLock::new(HashMap::new()),
        }
    }

    /// A cached verification of access token `token`, while it has not expired.
    pub fn token(&self, token: &str) -> Option<VerifiedToken> {
        if self.ttl.is_zero() {
            return None;
        }
        let now = Utc::now().timestamp();
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        tokens.get(token).copied().filter(|t| t.expires_at > now)
    }

    /// Caches the verification of `token` until it expires.
    pub fn put_token(&self, token: &str, verified: VerifiedToken) {
        if self.ttl.is_zero() {
            return;
        }
        let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= MAX_ENTRIES {
            let now = Utc::now().timestamp();
            tokens.retain(|_, t| t.expires_at > now);
            if tokens.len() >= MAX_ENTRIES {
                tokens.clear();
            }
        }
        tokens.insert(token.into(), verified);
    }

    /// The number of invalidations seen so far.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether entries are being served (false while the PostgreSQL listener is down).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    /// Marks the bus connection up or down. Either way everything cached is dropped: going
    /// down, entries could miss invalidations; coming up, some may already have.
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
        self.invalidate(Invalidation::All);
    }

    /// Call before reading what you will `put_*`: remembers the epoch.
    pub fn begin(&self) -> Fill {
        let usable = self.is_live() && !self.ttl.is_zero();
        Fill(usable.then(|| self.epoch()))
    }

    fn read<R>(&self, f: impl FnOnce(&Maps, &dyn Fn(Instant) -> bool) -> Option<R>) -> Option<R> {
        if !self.is_live() || self.ttl.is_zero() {
            return None;
        }
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        let ttl = self.ttl;
        f(&maps, &move |at: Instant| at.elapsed() < ttl)
    }

    fn write(&self, fill: Fill, f: impl FnOnce(&mut Maps, Instant)) {
        let Some(epoch) = fill.0 else { return };
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        // Compared under the write lock, which `invalidate` also takes: an invalidation that
        // came after `begin` is either already counted here or waits for this insert and
        // then removes it.
        if self.epoch() != epoch || !self.is_live() {
            return;
        }
        if maps.len() >= MAX_ENTRIES {
            *maps = Maps::default();
        }
        f(&mut maps, Instant::now());
    }

    /// Applies `change`: drops every entry it could affect and bumps the epoch.
    pub fn invalidate(&self, change: Invalidation) {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match change {
            Invalidation::User(id) => {
                maps.accounts.remove(&id);
                maps.members.retain(|(_, user), _| *user != id);
            }
            Invalidation::Member { org_id, user_id } => {
                maps.members.remove(&(org_id, user_id));
            }
            Invalidation::Org(id) => {
                maps.orgs.remove(&id);
                maps.roles.remove(&id);
                maps.decisions.remove(&id);
                maps.members.retain(|(org, _), _| *org != id);
                maps.keys
                    .retain(|_, k| k.value.subject.org_id() != Some(id));
            }
            Invalidation::Key(id) => maps.keys.retain(|_, k| k.value.key_id != id),
            Invalidation::Roles(id) => {
                maps.roles.remove(&id);
                maps.decisions.remove(&id);
            }
            Invalidation::All => *maps = Maps::default(),
        }
    }

    /// A user's cached account state.
    pub fn account(&self, user_id: Uuid) -> Option<AccountState> {
        self.read(|m, fresh| {
            m.accounts
                .get(&user_id)
                .filter(|e| fresh(e.at))
                .map(|e| e.value)
        })
    }

    /// Caches a user's account state read after `fill`.
    pub fn put_account(&self, fill: Fill, user_id: Uuid, state: AccountState) {
        self.write(fill, |m, at| {
            m.accounts.insert(user_id, Entry { value: state, at });
        });
    }

    /// A cached membership: `Some(Some(role))`, `Some(None)` for "not a member", `None` when
    /// not cached.
    pub fn member(&self, org_id: Uuid, user_id: Uuid) -> Option<Option<String>> {
        self.read(|m, fresh| {
            m.members
                .get(&(org_id, user_id))
                .filter(|e| fresh(e.at))
                .map(|e| e.value.clone())
        })
    }

    /// Caches a membership (or its absence) read after `fill`.
    pub fn put_member(&self, fill: Fill, org_id: Uuid, user_id: Uuid, role: Option<String>) {
        self.write(fill, |m, at| {
            m.members
                .insert((org_id, user_id), Entry { value: role, at });
        });
    }

    /// A cached org row.
    pub fn org(&self, org_id: Uuid) -> Option<organization::Model> {
        self.read(|m, fresh| {
            m.orgs
                .get(&org_id)
                .filter(|e| fresh(e.at))
                .map(|e| e.value.clone())
        })
    }

    /// Caches an org row read after `fill`.
    pub fn put_org(&self, fill: Fill, org: organization::Model) {
        self.write(fill, |m, at| {
            m.orgs.insert(org.id, Entry { value: org, at });
        });
    }

    /// A custom role's cached stored permissions.
    pub fn role_permissions(&self, org_id: Uuid, role: &str) -> Option<Vec<String>> {
        self.read(|m, fresh| {
            m.roles
                .get(&org_id)?
                .get(role)
                .filter(|e| fresh(e.at))
                .map(|e| e.value.clone())
        })
    }

    /// Caches a custom role's stored permissions read after `fill`.
    pub fn put_role_permissions(&self, fill: Fill, org_id: Uuid, role: &str, perms: Vec<String>) {
        self.write(fill, |m, at| {
            m.roles
                .entry(org_id)
                .or_default()
                .insert(role.to_owned(), Entry { value: perms, at });
        });
    }

    /// A cached casbin decision for `role` holding `permission` in `org_id`.
    pub fn decision(&self, org_id: Uuid, role: &str, permission: &str) -> Option<bool> {
        self.read(|m, fresh| {
            m.decisions
                .get(&org_id)?
                .get(role)?
                .get(permission)
                .filter(|e| fresh(e.at))
                .map(|e| e.value)
        })
    }

    /// Caches a casbin decision made after `fill`.
    pub fn put_decision(&self, fill: Fill, org_id: Uuid, role: &str, permission: &str, ok: bool) {
        self.write(fill, |m, at| {
            m.decisions
                .entry(org_id)
                .or_default()
                .entry(role.to_owned())
                .or_default()
                .insert(permission.to_owned(), Entry { value: ok, at });
        });
    }

    /// A verified API key, by the SHA-256 of the whole presented key.
    pub fn key(&self, hash: &[u8; 32]) -> Option<VerifiedKey> {
        self.read(|m, fresh| {
            m.keys
                .get(hash)
                .filter(|e| fresh(e.at))
                .map(|e| e.value.clone())
        })
    }

    /// Caches a key verified after `fill`.
    pub fn put_key(&self, fill: Fill, hash: [u8; 32], key: VerifiedKey) {
        self.write(fill, |m, at| {
            m.keys.insert(hash, Entry { value: key, at });
        });
    }

    /// Records that a cached key's `last_used_at` was written (no epoch: it changes no
    /// decision).
    pub fn touch_key(&self, hash: &[u8; 32], at: DateTime<Utc>) {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = maps.keys.get_mut(hash) {
            e.value.last_used_at = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> AuthCache {
        AuthCache::new(Duration::from_secs(60), true)
    }

    #[test]
    fn wire_form_round_trips_and_unknown_means_all() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        for change in [
            Invalidation::User(a),
            Invalidation::Member {
                org_id: a,
                user_id: b,
            },
            Invalidation::Org(a),
            Invalidation::Key(b),
            Invalidation::Roles(a),
            Invalidation::All,
        ] {
            assert_eq!(Invalidation::decode(&change.encode()), change);
        }
        assert_eq!(Invalidation::decode("m:nonsense"), Invalidation::All);
        assert_eq!(Invalidation::decode(""), Invalidation::All);
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let c = cache();
        let (org, user) = (Uuid::now_v7(), Uuid::now_v7());
        let fill = c.begin();
        // Another node removes the member while this one reads the old row.
        c.invalidate(Invalidation::Member {
            org_id: org,
            user_id: user,
        });
        c.put_member(fill, org, user, Some("owner".into()));
        assert_eq!(
            c.member(org, user),
            None,
            "the stale read must not be cached"
        );
        let fill = c.begin();
        c.put_member(fill, org, user, None);
        assert_eq!(c.member(org, user), Some(None));
    }

    #[test]
    fn invalidations_drop_what_they_touch_and_only_that() {
        let c = cache();
        let (org, other, user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let fill = c.begin();
        c.put_member(fill, org, user, Some("viewer".into()));
        c.put_member(fill, other, user, Some("viewer".into()));
        c.put_decision(fill, org, "viewer", "orgs:read", true);
        c.put_account(
            fill,
            user,
            AccountState::Open {
                token_generation: 3,
            },
        );
        c.invalidate(Invalidation::Roles(org));
        assert_eq!(c.decision(org, "viewer", "orgs:read"), None);
        assert!(c.member(org, user).is_some());
        c.invalidate(Invalidation::User(user));
        assert_eq!(c.account(user), None);
        assert_eq!(c.member(other, user), None);
    }

    #[test]
    fn bypassed_while_the_bus_is_down_and_emptied_when_it_returns() {
        let c = AuthCache::new(Duration::from_secs(60), false);
        let org = Uuid::now_v7();
        c.put_decision(c.begin(), org, "viewer", "orgs:read", true);
        assert_eq!(c.decision(org, "viewer", "orgs:read"), None);
        c.set_live(true);
        c.put_decision(c.begin(), org, "viewer", "orgs:read", true);
        assert_eq!(c.decision(org, "viewer", "orgs:read"), Some(true));
        c.set_live(false);
        assert_eq!(c.decision(org, "viewer", "orgs:read"), None);
        c.set_live(true);
        assert_eq!(c.decision(org, "viewer", "orgs:read"), None, "emptied");
    }

    #[test]
    fn verified_tokens_are_served_until_they_expire() {
        let c = cache();
        let now = Utc::now().timestamp();
        let t = |expires_at| VerifiedToken {
            user_id: Uuid::nil(),
            generation: 1,
            expires_at,
        };
        c.put_token("live", t(now + 60));
        c.put_token("dead", t(now - 1));
        assert_eq!(c.token("live"), Some(t(now + 60)));
        assert_eq!(c.token("dead"), None);
        assert_eq!(c.token("other"), None);
    }

    #[test]
    fn entries_lapse_after_the_ttl_and_zero_caches_nothing() {
        let c = AuthCache::new(Duration::ZERO, true);
        let org = Uuid::now_v7();
        c.put_decision(c.begin(), org, "viewer", "orgs:read", true);
        assert_eq!(c.decision(org, "viewer", "orgs:read"), None);
        let c = AuthCache::new(Duration::from_millis(20), true);
        c.put_decision(c.begin(), org, "viewer", "orgs:read", true);
        assert_eq!(c.decision(org, "viewer", "orgs:read"), Some(true));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.decision(org, "viewer", "orgs:read"), None);
    }
}
