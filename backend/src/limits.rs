//! The front door's limits (docs/front-door.md): token buckets in Redis,
//! shared by every API instance, per client (`boxoffice_platform::client`),
//! per buyer and per event; per-instance buckets for reads; and bounds on
//! the seat-map streams and long polls an instance keeps open.

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
    /// Reads of one client address, counted by each instance
    /// ([`LocalBuckets`]), never in Redis.
    Reads,
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
            Self::Reads => "reads",
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
            Self::Reads => "Too many reads from your network",
        }
    }

    /// The `429` of this limit, to be asked again in `wait_ms` (whole
    /// seconds, at least one).
    fn refused(self, wait_ms: u64) -> ApiError {
        let retry_after_s = wait_ms.div_ceil(1000).max(1);
        ApiError::RateLimited {
            code: "rate_limited",
            retry_after_s,
            message: format!("{}; retry in {retry_after_s} s.", self.too_many()),
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

    /// The refusal counter of `scope`, for limits counted elsewhere
    /// ([`LocalBuckets`]).
    pub fn refusals(&self, scope: Scope) -> prometheus::IntCounter {
        self.limited.with_label_values(&[scope.name()])
    }

    /// Takes one token from every bucket in `checks`, or answers `429` with
    /// `Retry-After` from the one that refills last (and takes none).
    pub async fn take(
        &self,
        redis: &boxoffice_platform::cache::Shared,
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
            invocation
                .invoke_async(&mut redis.conn())
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
                Err(scope.refused(wait_ms))
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

/// Token buckets kept in this instance, one per client, for calls too
/// frequent to count in Redis without slowing them down: reads of events,
/// seat maps and bookings (a seat map is one Redis read; a shared bucket
/// would double it). A client's limit is therefore per instance: behind a
/// load balancer over N instances it may read up to N times the rate.
///
/// Memory is bounded: at most [`LocalBuckets::MAX_CLIENTS`] clients are
/// tracked. A bucket that has refilled completely says nothing a new one
/// would not, so when the table is full such buckets are swept out (at most
/// once a second, so a flood of new clients cannot make every call scan the
/// table); clients that still find no room share one overflow bucket.
pub struct LocalBuckets {
    rate: Rate,
    capacity: usize,
    table: Mutex<Table>,
    /// Calls refused, for the dashboards (`api_rate_limited_total{limit="reads"}`).
    limited: prometheus::IntCounter,
}

struct Table {
    buckets: HashMap<String, Bucket>,
    overflow: Option<Bucket>,
    swept_at: Option<std::time::Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    fn full(burst: u32, now: std::time::Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// The level at `now` (never moved back by an earlier `now`).
    fn level(&self, per_second: f64, burst: u32, now: std::time::Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * per_second).min(f64::from(burst))
    }

    /// Takes a token at `now`, or says how long until one is there.
    fn take(
        &mut self,
        per_second: f64,
        burst: u32,
        now: std::time::Instant,
    ) -> Result<(), std::time::Duration> {
        let level = self.level(per_second, burst, now);
        self.at = self.at.max(now);
        self.tokens = level;
        // Within a rounding error of a whole token is a token: a client
        // that waits exactly as long as it was told must get one.
        if level >= 1.0 - 1e-9 {
            self.tokens = (level - 1.0).max(0.0);
            Ok(())
        } else {
            // Rounded up to the microsecond, never short.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let micros = ((1.0 - level) / per_second * 1e6).ceil() as u64;
            Err(std::time::Duration::from_micros(micros.max(1)))
        }
    }
}

impl LocalBuckets {
    /// Clients tracked at once per instance (each an address and 24 bytes).
    pub const MAX_CLIENTS: usize = 100_000;

    pub fn new(rate: Rate, limited: prometheus::IntCounter) -> Self {
        Self::with_capacity(rate, Self::MAX_CLIENTS, limited)
    }

    fn with_capacity(rate: Rate, capacity: usize, limited: prometheus::IntCounter) -> Self {
        Self {
            rate,
            capacity,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                overflow: None,
                swept_at: None,
            }),
            limited,
        }
    }

    /// Takes one token from `client`'s bucket, or answers `429` with
    /// `Retry-After`.
    pub fn take(&self, client: &str) -> Result<(), ApiError> {
        self.take_at(client, std::time::Instant::now())
            .map_err(|wait| {
                self.limited.inc();
                Scope::Reads.refused(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
            })
    }

    /// [`Self::take`] at `now`: the bucket arithmetic, without a clock.
    fn take_at(&self, client: &str, now: std::time::Instant) -> Result<(), std::time::Duration> {
        let Rate::Bucket { per_second, burst } = self.rate else {
            return Ok(());
        };
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let table = &mut *table;
        if let Some(bucket) = table.buckets.get_mut(client) {
            return bucket.take(per_second, burst, now);
        }
        if table.buckets.len() >= self.capacity
            && table
                .swept_at
                .is_none_or(|at| now.saturating_duration_since(at).as_secs() >= 1)
        {
            table.swept_at = Some(now);
            let full = f64::from(burst);
            table
                .buckets
                .retain(|_, b| b.level(per_second, burst, now) < full);
        }
        if table.buckets.len() < self.capacity {
            let bucket = table
                .buckets
                .entry(client.to_owned())
                .or_insert_with(|| Bucket::full(burst, now));
            bucket.take(per_second, burst, now)
        } else {
            table
                .overflow
                .get_or_insert_with(|| Bucket::full(burst, now))
                .take(per_second, burst, now)
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .buckets
            .len()
    }
}

/// What a [`Concurrency`] bound counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounded {
    /// Live seat-map streams, per client address.
    Streams,
    /// Long polls for a booking (`wait_ms`), per buyer.
    LongPolls,
}

impl Bounded {
    fn refused(self, mine: usize) -> ApiError {
        match self {
            Self::Streams => ApiError::RateLimited {
                code: "too_many_streams",
                retry_after_s: 5,
                message: format!(
                    "Your network has {mine} live seat maps open here already; close one first."
                ),
            },
            Self::LongPolls => ApiError::RateLimited {
                code: "too_many_waits",
                retry_after_s: 1,
                message: format!(
                    "You already wait for {mine} bookings here; wait for one of them to be \
                     answered, or ask without wait_ms."
                ),
            },
        }
    }

    fn full(self) -> ApiError {
        ApiError::Unavailable(
            match self {
                Self::Streams => "too many live seat maps are open at this moment",
                Self::LongPolls => "too many buyers wait for bookings at this moment",
            }
            .to_owned(),
        )
    }
}

/// Bounds on what one instance keeps open at once (seat-map streams, long
/// polls): at most `per_client` per client and `total` in all. Counted per
/// instance: what is open lives in one instance, and a crash takes its count
/// with it.
pub struct Concurrency {
    what: Bounded,
    per_client: usize,
    total: usize,
    open: Mutex<(usize, HashMap<String, usize>)>,
    /// Open now, for the dashboards.
    gauge: prometheus::IntGauge,
}

/// One open stream or long poll; dropping it (answered, or the client left)
/// frees its place.
pub struct Place {
    limits: Arc<Concurrency>,
    client: String,
}

impl Concurrency {
    pub fn new(
        what: Bounded,
        per_client: usize,
        total: usize,
        gauge: prometheus::IntGauge,
    ) -> Arc<Self> {
        Arc::new(Self {
            what,
            per_client,
            total,
            open: Mutex::new((0, HashMap::new())),
            gauge,
        })
    }

    /// A place for one more of `client`, or `429` when it already has
    /// `per_client` open here, or `503` when this instance has `total`.
    pub fn open(self: &Arc<Self>, client: &str) -> Result<Place, ApiError> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_client) = &mut *open;
        let mine = per_client.get(client).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(self.what.refused(mine));
        }
        if *total >= self.total {
            return Err(self.what.full());
        }
        *total += 1;
        self.gauge.inc();
        per_client.insert(client.to_owned(), mine + 1);
        Ok(Place {
            limits: self.clone(),
            client: client.to_owned(),
        })
    }
}

impl Drop for Place {
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
        let limits = Concurrency::new(Bounded::Streams, 2, 3, gauge.clone());
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

    fn reads(rate: &str, capacity: usize) -> LocalBuckets {
        let counter = prometheus::IntCounter::new("limited", "refused").unwrap();
        LocalBuckets::with_capacity(rate.parse().unwrap(), capacity, counter)
    }

    #[test]
    fn a_client_reads_its_burst_then_at_the_rate_and_others_are_apart() {
        let limits = reads("2/s:3", 10);
        let t0 = std::time::Instant::now();
        for _ in 0..3 {
            limits.take_at("a", t0).unwrap();
        }
        let wait = limits.take_at("a", t0).unwrap_err();
        assert_eq!(wait, std::time::Duration::from_millis(500));
        limits
            .take_at("b", t0)
            .expect("another client has its own bucket");
        let later = t0 + std::time::Duration::from_millis(500);
        limits
            .take_at("a", later)
            .expect("refilled after the wait it was told");
        assert!(limits.take_at("a", later).is_err());
        // A clock read earlier than the last one moves nothing back.
        assert!(limits.take_at("a", t0).is_err());
    }

    #[test]
    fn a_full_table_sweeps_idle_clients_and_newcomers_share_the_overflow() {
        let limits = reads("1/s:2", 3);
        let t0 = std::time::Instant::now();
        for c in ["a", "b", "c"] {
            limits.take_at(c, t0).unwrap();
        }
        // Full of active clients: the newcomers share one bucket of 2.
        limits.take_at("d", t0).unwrap();
        limits.take_at("e", t0).unwrap();
        assert!(
            limits.take_at("f", t0).is_err(),
            "the overflow bucket is shared"
        );
        assert_eq!(limits.tracked(), 3);
        // A second later a, b and c have refilled: swept, and d gets a bucket.
        let t1 = t0 + std::time::Duration::from_secs(1);
        limits.take_at("d", t1).unwrap();
        assert_eq!(limits.tracked(), 1);
        assert!(limits.take_at("x", std::time::Instant::now()).is_ok());
    }

    #[test]
    fn reads_off_take_nothing() {
        let limits = reads("off", 1);
        let t0 = std::time::Instant::now();
        for i in 0..100 {
            limits.take_at(&i.to_string(), t0).unwrap();
        }
        assert_eq!(limits.tracked(), 0);
    }

    #[test]
    fn long_polls_are_refused_with_their_own_code() {
        let gauge = prometheus::IntGauge::new("polls", "open").unwrap();
        let limits = Concurrency::new(Bounded::LongPolls, 1, 5, gauge);
        let _one = limits.open("buyer").unwrap();
        let Err(ApiError::RateLimited { code, .. }) = limits.open("buyer") else {
            panic!("a second long poll of one buyer was let through");
        };
        assert_eq!(code, "too_many_waits");
    }

    proptest! {
        /// Over any calls from six clients at any (monotonic) times: the
        /// table never holds more than its capacity; where every client
        /// fits, none gets more than its burst plus the rate times the time
        /// passed, and one told to wait gets a token once it has waited that
        /// long; where they do not fit, none gets more than twice that (its
        /// own bucket and the shared overflow's), and all of them together
        /// no more than that per client plus one overflow bucket's worth (a
        /// client swept out had a full bucket, so coming back with a new one
        /// gains it nothing).
        #[test]
        fn local_buckets_never_exceed_the_rate(
            calls in proptest::collection::vec((0usize..6, 0u64..60), 1..400),
            capacity in 1usize..8,
        ) {
            // A burst large against the rate: a bucket handed out afresh
            // where it should not be shows at once.
            let limits = reads("1/s:20", capacity);
            let t0 = std::time::Instant::now();
            let mut now = t0;
            let mut taken = [0u32; 6];
            for (client, step_ms) in calls {
                now += std::time::Duration::from_millis(step_ms);
                let key = client.to_string();
                match limits.take_at(&key, now) {
                    Ok(()) => taken[client] += 1,
                    Err(wait) if capacity >= 6 => {
                        prop_assert!(wait > std::time::Duration::ZERO);
                        now += wait;
                        prop_assert!(limits.take_at(&key, now).is_ok(), "refused after waiting as told");
                        taken[client] += 1;
                    }
                    Err(_) => {}
                }
                prop_assert!(limits.tracked() <= capacity);
            }
            let bound = 20.0 + now.saturating_duration_since(t0).as_secs_f64() + 1e-6;
            if capacity >= 6 {
                for count in taken {
                    prop_assert!(f64::from(count) <= bound, "{count} > {bound}");
                }
            } else {
                // Its own bucket, and what it took from the shared overflow.
                for count in taken {
                    prop_assert!(f64::from(count) <= 2.0 * bound, "{count} > 2 x {bound}");
                }
                let all: u32 = taken.iter().sum();
                prop_assert!(f64::from(all) <= 7.0 * bound, "{all} > 7 x {bound}");
            }
        }
    }

    proptest! {
        #[test]
        fn rates_never_panic_on_any_text(s in "\\PC{0,30}") {
            let _ = s.parse::<Rate>();
        }
    }
}
