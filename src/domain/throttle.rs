//! Login throttling (on top of the per-minute rate limits): consecutive failed logins per
//! account and per client IP grow a lock-out delay. The first `free_failures` of an account
//! (`ip_free_failures` of an address) inside `window_s` cost nothing; each further one locks the key for `base_delay_s · 2^(n-1)`
//! seconds, capped at `max_delay_s`. While locked, logins are refused with 429
//! `login_throttled` and `Retry-After` before the password is checked. A success clears the
//! account's counter (not the IP's: one good password must not reset an attacker's address).
//! Counters live in the database, so every node sees them (OWASP Authentication Cheat Sheet,
//! "Login Throttling").

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use sha2::{Digest, Sha256};

use crate::{
    auth::tokens::hex,
    entity::login_failure,
    error::{AppError, AppResult, ProblemCode, RateLimited},
};

/// The throttling policy (config `login_throttle_*`).
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Failures of one account inside the window that cost no delay.
    pub free_failures: u32,
    /// Failures from one IP address inside the window that cost no delay (higher: many
    /// people may share an address).
    pub ip_free_failures: u32,
    /// Delay (s) after the first failure past the free ones; doubles per failure.
    pub base_delay_s: u64,
    /// Longest delay (s).
    pub max_delay_s: u64,
    /// Failures older than this (s) are forgotten.
    pub window_s: u64,
}

impl Policy {
    /// The policy from the `login_throttle_*` configuration keys.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            free_failures: config.login_throttle_free_failures,
            ip_free_failures: config.login_throttle_ip_free_failures,
            base_delay_s: config.login_throttle_base_delay_s,
            max_delay_s: config.login_throttle_max_delay_s,
            window_s: config.login_throttle_window_s,
        }
    }

    /// The lock-out delay (s) after the `failures`-th consecutive failure of an account.
    pub fn delay_after(&self, failures: u32) -> u64 {
        self.delay(failures, self.free_failures)
    }

    /// The delay (s) after the `failures`-th failure of the counter `key` (account or IP).
    pub fn delay_for(&self, key: &str, failures: u32) -> u64 {
        let free = if key.starts_with("ip:") {
            self.ip_free_failures
        } else {
            self.free_failures
        };
        self.delay(failures, free)
    }

    fn delay(&self, failures: u32, free: u32) -> u64 {
        if failures <= free {
            return 0;
        }
        let n = failures - free - 1;
        let factor = 1u64.checked_shl(std::cmp::min(n, 40)).unwrap_or(u64::MAX);
        std::cmp::min(self.base_delay_s.saturating_mul(factor), self.max_delay_s)
    }
}

/// The counter key of an account: `account:` + hex SHA-256 of the normalised email (the
/// table holds no email address).
pub fn account_key(email: &str) -> String {
    format!(
        "account:{}",
        hex(&Sha256::digest(email.trim().to_lowercase().as_bytes()))
    )
}

/// The counter key of a client IP.
pub fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// Seconds until the longest lock among `keys` ends; `None` when none is locked.
pub async fn locked_for(
    db: &DatabaseConnection,
    keys: &[String],
    now: DateTime<Utc>,
) -> AppResult<Option<u64>> {
    let rows = login_failure::Entity::find()
        .filter(login_failure::Column::Key.is_in(keys.iter().cloned()))
        .filter(login_failure::Column::LockedUntil.gt(now))
        .all(db)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.locked_until)
        .map(|t| {
            std::cmp::max(
                (std::cmp::max((t - now).num_milliseconds(), 0) as u64).div_ceil(1000),
                1,
            )
        })
        .max())
}

/// Counts a failure against each key; returns, per key, the failure count and the delay (s)
/// it now carries.
pub async fn record_failure(
    db: &DatabaseConnection,
    policy: &Policy,
    keys: &[String],
    now: DateTime<Utc>,
) -> AppResult<Vec<(String, u32, u64)>> {
    let window_start = now - Duration::seconds(policy.window_s as i64);
    let tx = super::begin_write(db).await?;
    let mut out = Vec::new();
    for key in keys {
        // One atomic upsert per key: concurrent failures all count.
        login_failure::Entity::insert(login_failure::ActiveModel {
            key: Set(key.clone()),
            failures: Set(1),
            last_failure_at: Set(now),
            locked_until: Set(None),
        })
        .on_conflict(
            OnConflict::column(login_failure::Column::Key)
                .value(
                    login_failure::Column::Failures,
                    Expr::case(
                        Expr::col((login_failure::Entity, login_failure::Column::LastFailureAt))
                            .lt(window_start),
                        Expr::val(1),
                    )
                    .finally(
                        Expr::col((login_failure::Entity, login_failure::Column::Failures)).add(1),
                    ),
                )
                .value(login_failure::Column::LastFailureAt, Expr::val(now))
                .to_owned(),
        )
        .exec_without_returning(&tx)
        .await?;
        let row = login_failure::Entity::find_by_id(key.clone())
            .one(&tx)
            .await?
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("login_failures row vanished")))?;
        let failures = std::cmp::max(row.failures, 0) as u32;
        let delay = policy.delay_for(key, failures);
        if delay > 0 {
            login_failure::Entity::update_many()
                .col_expr(
                    login_failure::Column::LockedUntil,
                    Expr::val(now + Duration::seconds(delay as i64)),
                )
                .filter(login_failure::Column::Key.eq(key.clone()))
                .exec(&tx)
                .await?;
        }
        out.push((key.clone(), failures, delay));
    }
    tx.commit().await?;
    Ok(out)
}

/// Forgets the failures of `key` (after a successful login).
pub async fn clear(db: &DatabaseConnection, key: &str) -> AppResult<()> {
    login_failure::Entity::delete_by_id(key.to_owned())
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes counters idle for longer than the window (run by the reaper).
pub async fn purge(db: &DatabaseConnection, policy: &Policy, now: DateTime<Utc>) -> AppResult<u64> {
    let cutoff = now - Duration::seconds(std::cmp::max(policy.window_s, policy.max_delay_s) as i64);
    Ok(login_failure::Entity::delete_many()
        .filter(login_failure::Column::LastFailureAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected)
}

/// The 429 for a locked login.
pub fn throttled(retry_after_s: u64, policy: &Policy) -> AppError {
    AppError::TooManyRequests {
        code: ProblemCode::LoginThrottled,
        detail: format!(
            "too many failed logins for this account or address; retry in {retry_after_s} s"
        ),
        limit: RateLimited {
            retry_after_s,
            policy: format!(
                "\"login_failures\";q={};w={}",
                policy.free_failures, policy.window_s
            ),
            limit: format!("\"login_failures\";r=0;t={retry_after_s}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_then_caps() {
        let p = Policy {
            free_failures: 3,
            ip_free_failures: 5,
            base_delay_s: 1,
            max_delay_s: 300,
            window_s: 900,
        };
        let delays: Vec<u64> = (1..=14).map(|n| p.delay_after(n)).collect();
        assert_eq!(
            delays,
            [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
        );
        assert_eq!(p.delay_after(u32::MAX), 300);
        assert_eq!(p.delay_for("ip:127.0.0.1", 5), 0);
        assert_eq!(p.delay_for("ip:127.0.0.1", 6), 1);
        assert_eq!(p.delay_for(&account_key("a@b.c"), 4), 1);
        assert_ne!(account_key("Ada@Example.com "), ip_key("ada@example.com"));
        assert_eq!(
            account_key("Ada@Example.com "),
            account_key("ada@example.com")
        );
    }
}
