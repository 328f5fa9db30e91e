//! Rate limits with governor (GCRA), keyed per client IP and per account. tower-governor
//! does not compile under poem (ARCHITECTURE §8); governor is its engine.
//!
//! Responses carry `RateLimit-Policy` and `RateLimit` (IETF draft "RateLimit header fields for
//! HTTP"): `"ip";q=600;w=60` and `"ip";r=<remaining>;t=<seconds until full>`. Over the limit:
//! 429 `rate_limited` problem with `Retry-After` (s). Stale keys are dropped every minute by
//! [`Limiters::retain_recent`].

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::{StateInformationMiddleware, StateSnapshot},
    state::keyed::DefaultKeyedStateStore,
};
use poem::{Response, http::HeaderValue};

use crate::{
    config::Config,
    error::{AppError, ProblemCode, RateLimited},
};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

struct Limit<K: std::hash::Hash + Eq + Clone> {
    name: &'static str,
    per_min: u32,
    limiter: Keyed<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Limit<K> {
    fn new(name: &'static str, per_min: u32) -> Self {
        let n = NonZeroU32::new(per_min).expect("validated > 0");
        let limiter = RateLimiter::keyed(Quota::per_minute(n))
            .with_middleware::<StateInformationMiddleware>();
        Self {
            name,
            per_min,
            limiter,
        }
    }

    fn policy(&self) -> String {
        format!("\"{}\";q={};w=60", self.name, self.per_min)
    }

    fn check(&self, key: &K) -> Result<LimitState, AppError> {
        match self.limiter.check_key(key) {
            Ok(snapshot) => Ok(LimitState {
                policy: self.policy(),
                state: self.state_of(&snapshot),
            }),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry_after_s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(AppError::TooManyRequests {
                    code: ProblemCode::RateLimited,
                    detail: format!(
                        "too many requests: the `{}` limit is {} a minute; retry after {retry_after_s} s",
                        self.name, self.per_min
                    ),
                    limit: RateLimited {
                        retry_after_s,
                        policy: self.policy(),
                        limit: format!("\"{}\";r=0;t={retry_after_s}", self.name),
                    },
                })
            }
        }
    }

    fn state_of(&self, s: &StateSnapshot) -> String {
        let remaining = s.remaining_burst_capacity();
        let per_unit = Duration::from_secs(60) / self.per_min;
        let reset = per_unit * (self.per_min - remaining.min(self.per_min));
        format!(
            "\"{}\";r={remaining};t={}",
            self.name,
            reset.as_secs() + u64::from(reset.subsec_nanos() > 0)
        )
    }
}

/// The state of the limit a request was counted against, for the response headers.
pub struct LimitState {
    policy: String,
    state: String,
}

impl LimitState {
    /// Adds `RateLimit-Policy` and `RateLimit` to `resp` unless an inner limit already did.
    pub fn apply(&self, resp: &mut Response) {
        let h = resp.headers_mut();
        if h.contains_key("ratelimit") {
            return;
        }
        if let (Ok(p), Ok(s)) = (
            HeaderValue::from_str(&self.policy),
            HeaderValue::from_str(&self.state),
        ) {
            h.insert("ratelimit-policy", p);
            h.insert("ratelimit", s);
        }
    }
}

/// Every limiter of one server.
pub struct Limiters {
    ip: Limit<IpAddr>,
    auth_ip: Limit<IpAddr>,
    login_account: Limit<String>,
    /// Whether client IPs come from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
}

const UNKNOWN_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The key an address is limited under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64,
/// since one subscriber routinely holds a whole /64.
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Limiters {
    /// Limiters from `rate_limit_per_ip_per_min`, `auth_rate_limit_per_ip_per_min` and
    /// `login_rate_limit_per_account_per_min`.
    pub fn new(config: &Config) -> Self {
        Self {
            ip: Limit::new("ip", config.rate_limit_per_ip_per_min),
            auth_ip: Limit::new("auth", config.auth_rate_limit_per_ip_per_min),
            login_account: Limit::new("login_account", config.login_rate_limit_per_account_per_min),
            trust_forwarded_for: config.trust_forwarded_for,
        }
    }

    /// Counts a request from `ip` against the general limit and, for `/v1/auth/*`, the auth
    /// limit. Errors: 429 `rate_limited`.
    pub fn check_ip(&self, ip: Option<IpAddr>, auth: bool) -> Result<LimitState, AppError> {
        let ip = limit_key(ip.unwrap_or(UNKNOWN_IP));
        let general = self.ip.check(&ip)?;
        if auth {
            self.auth_ip.check(&ip)
        } else {
            Ok(general)
        }
    }

    /// Counts a password check for an account: a login (by normalised email) or a
    /// `me.update` password change (by user id). Errors: 429 `rate_limited`.
    pub fn check_login_account(&self, email: &str) -> Result<(), AppError> {
        self.login_account
            .check(&email.trim().to_lowercase())
            .map(|_| ())
    }

    /// Forgets keys whose limits have fully replenished (bounded memory).
    pub fn retain_recent(&self) {
        self.ip.limiter.retain_recent();
        self.auth_ip.limiter.retain_recent();
        self.login_account.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_headers() {
        let config = Config {
            auth_rate_limit_per_ip_per_min: 2,
            ..Config::default()
        };
        let l = Limiters::new(&config);
        let ip = Some("10.1.2.3".parse().unwrap());
        let s = l.check_ip(ip, true).unwrap();
        assert_eq!(s.policy, "\"auth\";q=2;w=60");
        assert!(s.state.starts_with("\"auth\";r=1;"), "{}", s.state);
        l.check_ip(ip, true).unwrap();
        match l.check_ip(ip, true) {
            Err(AppError::TooManyRequests { limit, .. }) => {
                assert!(limit.retry_after_s >= 1 && limit.retry_after_s <= 30);
            }
            other => panic!("{:?}", other.err()),
        }
        // Another IP and non-auth routes are unaffected.
        assert!(l.check_ip(Some("10.9.9.9".parse().unwrap()), true).is_ok());
        assert!(l.check_ip(ip, false).is_ok());
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key("2001:db8:1:3::1".parse().unwrap()));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(limit_key(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
    }
}
