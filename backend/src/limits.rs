//! The front door's limits (docs/front-door.md): token buckets in Redis,
//! shared by every API instance, per client (`boxoffice_platform::client`),
//! per buyer and per event; and bounds on the seat-map streams an instance
//! keeps open.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::error::ApiError;

/// A token bucket: `per_second` tokens refill it, it holds at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Off,
    Bucket { per_second: f64, burst: u32 },
}

impl FromStr for Rate {
    type Err = String;

    /// `off`, or `N/s`, `N/min`, `N/h`, with `:BURST` (default: N, at
    /// least 1). `20/s:100` is 20 a second, 100 at once.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        let usage = || {
            format!("{s:?}: write `off` or a rate like `20/s:100` (N/s, N/min or N/h, then :BURST)")
        };
        let (rate, burst) = match s.split_once(':') {
            Some((r, b)) => (r, Some(b.trim().parse::<u32>().map_err(|_| usage())?)),
            None => (s, None),
        };
        let (count, unit) = rate.split_once('/').ok_or_else(usage)?;
        let count: f64 = count.trim().parse().map_err(|_| usage())?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(usage()),
        };
        if !count.is_finite() || count <= 0.0 {
            return Err(usage());
        }
        // Whole tokens only: a burst below one would refuse everything.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let burst = burst.unwrap_or(count.ceil().min(f64::from(u32::MAX)) as u32);
        if burst == 0 {
            return Err(usage());
        }
        Ok(Self::Bucket {
            per_second: count / seconds,
            burst,
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Bucket { per_second, burst } => write!(f, "{per_second}/s:{burst}"),
        }
    }
}

/// Refills and takes tokens of every bucket named in KEYS at once, or of
/// none: ARGV is the cost, then per key its refill per millisecond and its
/// burst. Answers `{0, 0}` when taken, else `{i, wait_ms}`: the 1-based
/// bucket that must refill longest, and for how long. Redis' own clock,
/// so API instances whose clocks differ count alike; a bucket's time never
/// moves back (a failover to a Redis whose clock is behind refills
/// nothing until it has caught up). A bucket's key
/// expires once it would be full again: an idle client costs nothing.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local levels, ats = {}, {}
local denied, wait = 0, 0
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or at == nil then tokens, at = burst, now end
  if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
  levels[i], ats[i] = tokens, at
  if tokens < cost then
    local w = math.ceil((cost - tokens) / rate)
    if w > wait then denied, wait = i, w end
  end
end
if denied > 0 then return {denied, wait} end
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('HSET', key, 'tokens', tostring(levels[i] - cost), 'at', tostring(math.max(now, ats[i])))
  redis.call('PEXPIRE', key, math.ceil(burst / rate) + 1000)
end
return {0, 0}
";

/// What a limit counts: its name (in metrics, keys and messages) and whose
/// requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// State-changing booking calls of one client address.
    Address,
    /// Booking calls of one buyer.
    Buyer,
    /// New bookings of one event, from every client.
    Event,
    /// New buyer identities from one client address.
    NewBuyer,
    /// Sign-in attempts from one client address.
    SignIn,
    /// Sign-in attempts for one account (by its email's hash), from any
    /// address.
    AccountSignIn,
    /// Waiting-room calls (joins and asks) of one buyer.
    WaitingRoom,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Buyer => "buyer",
            Self::Event => "event",
            Self::NewBuyer => "new_buyer",
            Self::SignIn => "sign_in",
            Self::AccountSignIn => "account_sign_in",
            Self::WaitingRoom => "waiting_room",
        }
    }

    fn too_many(self) -> &'static str {
        match self {
            Self::Address => "Too many booking requests from your network",
            Self::Buyer => "Too many booking requests from this buyer",
            Self::Event => "Too many buyers for this event at this moment",
            Self::NewBuyer => "Too many new buyer identities from your network",
            Self::SignIn => "Too many sign-in attempts from your network",
            Self::AccountSignIn => "Too many sign-in attempts for this account",
            Self::WaitingRoom => {
                "Too many waiting-room calls from this buyer: ask again when Retry-After says"
            }
        }
    }
}

/// One bucket to take a token from.
pub struct Check {
    pub scope: Scope,
    pub subject: String,
    pub rate: Rate,
}

/// When Redis cannot answer: let the request through (the limit only
/// shapes traffic, and the request needs Redis anyway), or refuse it (a
/// security limit, such as sign-in attempts, must not lapse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Allow,
    Refuse,
}

/// The API's rate limits and their counters.
pub struct Limiter {
    prefix: String,
    script: redis::Script,
    limited: prometheus::IntCounterVec,
    errors: prometheus::IntCounter,
}

impl Limiter {
    pub fn new(prefix: &str, registry: &prometheus::Registry) -> anyhow::Result<Self> {
        let limited = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "api_rate_limited_total",
                "Requests refused with 429 by a rate limit, by limit",
            ),
            &["limit"],
        )?;
        let errors = prometheus::IntCounter::new(
            "api_rate_limit_errors_total",
            "Rate-limit checks Redis could not answer",
        )?;
        registry.register(Box::new(limited.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        Ok(Self {
            prefix: prefix.to_owned(),
            script: redis::Script::new(TAKE),
            limited,
            errors,
        })
    }

    /// Takes one token from every bucket in `checks`, or answers `429` with
    /// `Retry-After` from the one that refills last (and takes none).
    pub async fn take(
        &self,
        redis: &deadpool_redis::Pool,
        checks: &[Check],
        on_error: OnError,
    ) -> Result<(), ApiError> {
        let buckets: Vec<(&Check, f64, u32)> = checks
            .iter()
            .filter_map(|c| match c.rate {
                Rate::Off => None,
                Rate::Bucket { per_second, burst } => Some((c, per_second, burst)),
            })
            .collect();
        if buckets.is_empty() {
            return Ok(());
        }
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(1);
        for (check, per_second, burst) in &buckets {
            invocation
                .key(format!(
                    "{}ratelimit:{}:{}",
                    self.prefix,
                    check.scope.name(),
                    check.subject
                ))
                .arg(per_second / 1000.0)
                .arg(*burst);
        }
        let answer: Result<(usize, u64), String> = async {
            let mut conn = redis.get().await.map_err(|e| e.to_string())?;
            invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match answer {
            Ok((0, _)) => Ok(()),
            Ok((denied, wait_ms)) => {
                let scope = buckets
                    .get(denied - 1)
                    .map_or(Scope::Address, |(c, _, _)| c.scope);
                self.limited.with_label_values(&[scope.name()]).inc();
                let retry_after_s = wait_ms.div_ceil(1000).max(1);
                Err(ApiError::RateLimited {
                    code: "rate_limited",
                    retry_after_s,
                    message: format!("{}; retry in {retry_after_s} s.", scope.too_many()),
                })
            }
            Err(e) => {
                self.errors.inc();
                tracing::warn!(error = %e, ?on_error, "rate limits could not be checked");
                match on_error {
                    OnError::Allow => Ok(()),
                    OnError::Refuse => Err(ApiError::Unavailable(
                        "the rate limits could not be checked".to_owned(),
                    )),
                }
            }
        }
    }
}

/// Bounds on the seat-map streams one instance keeps open: at most
/// `per_client` per client and `total` in all. Counted per instance: a
/// stream lives in one instance, and a crash takes its count with it.
pub struct StreamLimits {
    per_client: usize,
    total: usize,
    open: Mutex<(usize, HashMap<String, usize>)>,
    /// Streams open now, for the dashboards.
    gauge: prometheus::IntGauge,
}

/// One open stream; dropping it (the client left) frees its place.
pub struct StreamPlace {
    limits: Arc<StreamLimits>,
    client: String,
}

impl StreamLimits {
    pub fn new(per_client: usize, total: usize, gauge: prometheus::IntGauge) -> Arc<Self> {
        Arc::new(Self {
            per_client,
            total,
            open: Mutex::new((0, HashMap::new())),
            gauge,
        })
    }

    /// A place for one more stream of `client`, or `429` when it already
    /// has `per_client` open here, or this instance has `total`.
    pub fn open(self: &Arc<Self>, client: &str) -> Result<StreamPlace, ApiError> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_client) = &mut *open;
        let mine = per_client.get(client).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(ApiError::RateLimited {
                code: "too_many_streams",
                retry_after_s: 5,
                message: format!(
                    "Your network has {mine} live seat maps open here already; close one first."
                ),
            });
        }
        if *total >= self.total {
            return Err(ApiError::Unavailable(
                "too many live seat maps are open at this moment".to_owned(),
            ));
        }
        *total += 1;
        self.gauge.inc();
        per_client.insert(client.to_owned(), mine + 1);
        Ok(StreamPlace {
            limits: self.clone(),
            client: client.to_owned(),
        })
    }
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_client) = &mut *open;
        *total = total.saturating_sub(1);
        self.limits.gauge.dec();
        if let Some(n) = per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rates_parse_and_refuse_nonsense() {
        assert_eq!("off".parse(), Ok(Rate::Off));
        assert_eq!(
            "20/s:100".parse(),
            Ok(Rate::Bucket {
                per_second: 20.0,
                burst: 100
            })
        );
        assert_eq!(
            "6/min".parse(),
            Ok(Rate::Bucket {
                per_second: 0.1,
                burst: 6
            })
        );
        assert_eq!(
            "0.5/s".parse(),
            Ok(Rate::Bucket {
                per_second: 0.5,
                burst: 1
            })
        );
        for bad in [
            "", "20", "20/d", "-1/s", "0/s", "1/s:0", "x/s", "1/s:y", "NaN/s", "inf/s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn streams_are_bounded_per_client_and_in_total_and_freed_on_drop() {
        let gauge = prometheus::IntGauge::new("streams", "open").unwrap();
        let limits = StreamLimits::new(2, 3, gauge.clone());
        let a1 = limits.open("a").unwrap();
        let _a2 = limits.open("a").unwrap();
        assert!(limits.open("a").is_err(), "a third for one client");
        let _b1 = limits.open("b").unwrap();
        assert!(limits.open("c").is_err(), "a fourth in all");
        drop(a1);
        assert_eq!(gauge.get(), 2);
        let _c1 = limits.open("c").unwrap();
        assert_eq!(gauge.get(), 3);
    }

    proptest! {
        #[test]
        fn rates_never_panic_on_any_text(s in "\\PC{0,30}") {
            let _ = s.parse::<Rate>();
        }
    }
}
