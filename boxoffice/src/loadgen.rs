//! `boxoffice loadgen`: an on-sale spike. Many buyers at once ask for seats
//! (explicit picks and best-available) through one or more API instances;
//! every request is followed to its single outcome, then the invariants are
//! checked: no seat held by two bookings, and the live seat map shows exactly
//! the seats of the held and confirmed bookings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use boxoffice_domain::EventSpec;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::demo;

#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// API base URLs; requests are spread over them round-robin.
    #[arg(
        long = "api",
        env = "BOXOFFICE_API_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub apis: Vec<String>,
    /// Event to book; when absent a new event is created.
    #[arg(long)]
    pub event: Option<String>,
    #[arg(long, default_value_t = 2)]
    pub sections: u8,
    #[arg(long, default_value_t = 10)]
    pub rows: u16,
    #[arg(long, default_value_t = 25)]
    pub seats_per_row: u16,
    /// Parts the new event is decided in, each on its own partition and
    /// seat-processor (docs/event-partitioning.md); section `i` in part
    /// `i % parts`.
    #[arg(long, default_value_t = 1)]
    pub parts: u16,
    /// Booking requests to send, one buyer each.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Open loop: buyers arriving per second, on a fixed schedule whatever
    /// the system answers; latency counts from each scheduled arrival, so a
    /// slow answer is never hidden by the client waiting (no coordinated
    /// omission). Unset: closed loop, all at once, as fast as
    /// `--concurrency` allows.
    #[arg(long)]
    pub rate: Option<f64>,
    /// With `--rate`: arrivals ramp linearly from 0 to the rate over this many
    /// seconds, then hold.
    #[arg(long, default_value_t = 0.0)]
    pub ramp_secs: f64,
    /// Share of requests naming explicit seats (the rest ask for best-available).
    #[arg(long, default_value_t = 0.5)]
    pub explicit_share: f64,
    /// Share of held bookings then confirmed (the payment step).
    #[arg(long, default_value_t = 0.5)]
    pub confirm_share: f64,
    /// Most seats per request.
    #[arg(long, default_value_t = 4)]
    pub max_quantity: u16,
    #[arg(
        long,
        env = "BOXOFFICE_ORGANIZER_PASSWORD",
        default_value = "organizer",
        hide_env_values = true
    )]
    pub organizer_password: String,
    /// Share of held bookings then cancelled by the buyer (of those not confirmed).
    #[arg(long, default_value_t = 0.0)]
    pub cancel_share: f64,
    /// Seed of the request mix (which seats, how many, what each buyer does
    /// with a hold), so a run can be repeated; unset: a random one.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Retry a request answered 503 (or not answered at all) with the same
    /// Idempotency-Key, as the API asks, for up to 90 s: what a real client
    /// does while a dependency is down.
    #[arg(long)]
    pub retry_unavailable: bool,
    /// Also write the summary as a Markdown report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write every booking as the client was last told about it (JSON).
    #[arg(long)]
    pub bookings_out: Option<PathBuf>,
}

/// Refused at once for load (`503 overloaded`): never admitted, so not a
/// decision and not a server error.
fn is_shed(o: &Outcome) -> bool {
    o.status == 503 && o.code == "overloaded"
}

/// What happened to one request.
struct Outcome {
    status: u16,
    code: String,
    latency: Duration,
    booking: Option<Value>,
    token: String,
}

/// What a buyer does with a hold.
#[derive(Clone, Copy)]
enum AfterHold {
    Confirm,
    Cancel,
    Keep,
}

/// One buyer's connection to one API instance.
struct Client<'a> {
    http: &'a reqwest::Client,
    api: &'a str,
    token: &'a str,
    /// Retry 503s and lost connections, as `--retry-unavailable` says.
    retry: bool,
}

impl Client<'_> {
    /// Sends what `request` builds; with `retry`, again after a 503 or a 429
    /// (after its Retry-After) or a lost connection, for up to 90 s. The request
    /// carries the same Idempotency-Key every time.
    async fn send(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let sent = as_buyer(request(), self.token).send().await;
            let wait = match &sent {
                Ok(r)
                    if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                        || r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
                {
                    r.headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .map_or(Duration::from_secs(1), Duration::from_secs)
                }
                Err(_) => Duration::from_millis(500),
                Ok(_) => return sent,
            };
            if !self.retry || Instant::now() + wait > deadline {
                return sent;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// Each simulated buyer comes from an address of its own, in 10.0.0.0/8,
/// as seen by a proxy in front of the API: the rate limits count every
/// buyer apart only where the API trusts this client as a proxy
/// (`BOXOFFICE_TRUSTED_PROXIES`, as the local stack and bench/run.sh do);
/// elsewhere they all count as this machine, and the limits show it.
fn simulated_address(seed: impl std::hash::Hash) -> String {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    seed.hash(&mut h);
    let [a, b, c, ..] = h.finish().to_le_bytes();
    format!("10.{a}.{b}.{c}")
}

/// A request made as the buyer of `token`, from that buyer's address.
fn as_buyer(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    request
        .bearer_auth(token)
        .header("X-Forwarded-For", simulated_address(token))
}

/// A booking as it stands now (`None`: it could not be read).
async fn current(http: &reqwest::Client, api: &str, token: &str, booking: &Value) -> Option<Value> {
    let id = booking["id"].as_str()?;
    let r = as_buyer(http.get(format!("{api}/api/bookings/{id}")), token)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

#[derive(Serialize)]
struct Summary {
    event_id: String,
    capacity: usize,
    requests: usize,
    outcomes: BTreeMap<String, usize>,
    deferred_then_resolved: usize,
    unresolved: usize,
    /// 5xx answers, those shed under overload (`overloaded`) not included.
    server_errors: usize,
    /// Requests answered `503 overloaded` at once (with `--retry-unavailable`:
    /// still so after retrying for 90 s).
    shed: usize,
    /// How fast the shed ones were told (p99, ms): at once, not by a timeout.
    shed_latency_ms_p99: f64,
    held_bookings: usize,
    confirmed_bookings: usize,
    seats_taken: usize,
    duplicate_seats: usize,
    seat_map_mismatches: usize,
    elapsed_s: f64,
    requests_per_s: f64,
    /// Requests decided (held or refused by the seat-processor, answered at
    /// once or after a 202) per second of the run.
    decisions_per_s: f64,
    /// Open loop: the arrival rate asked for, and the ramp.
    arrival_rate: Option<f64>,
    ramp_s: f64,
    /// From arrival to the final answer, over the requests not shed.
    latency_ms_p50: f64,
    latency_ms_p90: f64,
    latency_ms_p99: f64,
    latency_ms_p999: f64,
    latency_ms_max: f64,
    invariants_hold: bool,
}

/// When request `i` arrives after the start: `rate` per second, reached by
/// a linear ramp over `ramp` seconds (arrivals by time t in the ramp are
/// `rate * t^2 / (2 * ramp)`), then steady.
pub fn arrival_offset(i: usize, rate: f64, ramp: f64) -> Duration {
    let i = i as f64;
    let in_ramp = rate * ramp / 2.0;
    let secs = if ramp > 0.0 && i < in_ramp {
        (2.0 * ramp * i / rate).sqrt()
    } else {
        ramp.max(0.0) + (i - in_ramp.max(0.0)) / rate
    };
    Duration::from_secs_f64(secs)
}

/// What the progress line reads while the spike runs.
#[derive(Default)]
struct Progress {
    arrived: std::sync::atomic::AtomicUsize,
    answered: std::sync::atomic::AtomicUsize,
    latencies: std::sync::Mutex<Vec<Duration>>,
}

impl Progress {
    fn answered(&self, latency: Duration) {
        self.answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.latencies.lock().expect("progress lock").push(latency);
    }

    /// One line: arrival rate over the last interval, in flight, answered,
    /// p99 so far.
    fn line(&self, elapsed: Duration, arrived_before: usize, interval: Duration) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let arrived = self.arrived.load(Relaxed);
        let answered = self.answered.load(Relaxed);
        let mut sorted = self.latencies.lock().expect("progress lock").clone();
        sorted.sort_unstable();
        format!(
            "[loadgen] {:6.1} s: {:6.0} arrivals/s, {} in flight, {} answered, p99 so far {:.1} ms",
            elapsed.as_secs_f64(),
            (arrived - arrived_before) as f64 / interval.as_secs_f64(),
            arrived.saturating_sub(answered),
            answered,
            percentile(&sorted, 0.99),
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let summary = spike(&args).await?;
    let json = serde_json::to_string_pretty(&summary)?;
    if let Some(path) = &args.report {
        std::fs::write(path, report(&args, &summary))?;
        eprintln!("[loadgen] report written to {}", path.display());
    }
    println!("{json}");
    anyhow::ensure!(
        summary.invariants_hold,
        "invariants violated: see the summary above"
    );
    Ok(())
}

async fn spike(args: &LoadgenArgs) -> anyhow::Result<Summary> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let apis: Vec<String> = args
        .apis
        .iter()
        .map(|a| a.trim_end_matches('/').to_owned())
        .collect();
    anyhow::ensure!(!apis.is_empty(), "give at least one --api");
    let event_id = match &args.event {
        Some(e) => e.clone(),
        None => {
            let token = demo::organizer_token(&http, &apis[0], &args.organizer_password).await?;
            let now = chrono::Utc::now().timestamp_millis();
            let mut spec = EventSpec::demo(
                "loadgen spike",
                args.sections,
                args.rows,
                args.seats_per_row,
                now - 60_000,
            );
            spec.max_seats_per_buyer = args.max_quantity.max(1);
            spec.parts = args.parts;
            let created = demo::create_event(&http, &apis[0], &token, &spec, 600).await?;
            created["id"]
                .as_str()
                .context("created event has no id")?
                .to_owned()
        }
    };
    let event: Value = http
        .get(format!("{}/api/events/{event_id}", apis[0]))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let spec: EventSpec = serde_json::from_value(event["spec"].clone()).context("event spec")?;
    let capacity = spec.venue.capacity();
    eprintln!(
        "[loadgen] event {event_id}: {capacity} seats; {} requests, {} at once, over {} API instance(s)",
        args.requests,
        args.concurrency,
        apis.len()
    );

    // Sign every buyer in before the spike, as a waiting room would.
    let mut tokens = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        let api = &apis[i % apis.len()];
        let t: Value = http
            .post(format!("{api}/api/auth/buyer"))
            .header("X-Forwarded-For", simulated_address(i))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        tokens.push(t["token"].as_str().context("buyer token")?.to_owned());
    }

    let mut rng = args.seed.map_or_else(
        rand::rngs::StdRng::from_os_rng,
        rand::rngs::StdRng::seed_from_u64,
    );
    let semaphore = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let reporter = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let interval = Duration::from_secs(1);
            let mut tick = tokio::time::interval_at((started + interval).into(), interval);
            let mut before = 0;
            loop {
                tick.tick().await;
                eprintln!("{}", progress.line(started.elapsed(), before, interval));
                before = progress.arrived.load(std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let mut tasks = Vec::with_capacity(args.requests);
    for (i, token) in tokens.into_iter().enumerate() {
        // Open loop: each buyer arrives on schedule, and its latency counts
        // from then, however long it then waits for a connection.
        let arrival = match args.rate.filter(|r| *r > 0.0) {
            Some(rate) => {
                let at = started + arrival_offset(i, rate, args.ramp_secs);
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        progress
            .arrived
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = random_request(&spec, args, &mut rng);
        let api = apis[i % apis.len()].clone();
        let http = http.clone();
        let semaphore = semaphore.clone();
        let event_id = event_id.clone();
        let after = if rng.random_bool(args.confirm_share.clamp(0.0, 1.0)) {
            AfterHold::Confirm
        } else if rng.random_bool(args.cancel_share.clamp(0.0, 1.0)) {
            AfterHold::Cancel
        } else {
            AfterHold::Keep
        };
        let retry = args.retry_unavailable;
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.expect("semaphore open");
            let client = Client {
                http: &http,
                api: &api,
                token: &token,
                retry,
            };
            let outcome = book(&client, &event_id, body, after, i, arrival).await;
            progress.answered(outcome.latency);
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await?);
    }
    let elapsed = started.elapsed();
    reporter.abort();
    eprintln!("{}", progress.line(elapsed, 0, elapsed));
    // Holds end meanwhile (expiry): what counts is each booking as it is now.
    for o in &mut outcomes {
        if let Some(b) = &o.booking
            && b["status"] == "held"
            && let Some(now) = current(&http, &apis[0], &o.token, b).await
        {
            o.booking = Some(now);
        }
    }
    if let Some(path) = &args.bookings_out {
        let told: Vec<&Value> = outcomes.iter().filter_map(|o| o.booking.as_ref()).collect();
        std::fs::write(path, serde_json::to_vec(&told)?)?;
    }

    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut latencies: Vec<Duration> = outcomes
        .iter()
        .filter(|o| !is_shed(o))
        .map(|o| o.latency)
        .collect();
    latencies.sort();
    let mut shed_latencies: Vec<Duration> = outcomes
        .iter()
        .filter(|o| is_shed(o))
        .map(|o| o.latency)
        .collect();
    shed_latencies.sort();
    let (mut deferred, mut unresolved, mut server_errors) = (0, 0, 0);
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut duplicates = 0;
    let (mut held, mut confirmed) = (0, 0);
    for o in &outcomes {
        *by_code.entry(o.code.clone()).or_default() += 1;
        if o.code.starts_with("deferred_") {
            deferred += 1;
        }
        if o.code == "unresolved" {
            unresolved += 1;
        }
        if o.status >= 500 && !is_shed(o) {
            server_errors += 1;
        }
        if let Some(b) = &o.booking {
            let status = b["status"].as_str().unwrap_or_default();
            if status != "held" && status != "confirmed" {
                continue;
            }
            if status == "held" {
                held += 1
            } else {
                confirmed += 1
            }
            let id = b["id"].as_str().unwrap_or_default().to_owned();
            for seat in b["seats"].as_array().into_iter().flatten() {
                let seat = seat.as_str().unwrap_or_default().to_owned();
                if let Some(previous) = owner.insert(seat.clone(), id.clone())
                    && previous != id
                {
                    eprintln!("[loadgen] seat {seat} given to {previous} and {id}");
                    duplicates += 1;
                }
            }
        }
    }

    // The live seat map must show exactly the seats of held/confirmed bookings.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let map: Value = http
        .get(format!("{}/api/events/{event_id}/seats", apis[0]))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let shown: HashSet<String> = map["seats"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let expected: HashSet<String> = owner.keys().cloned().collect();
    let mismatches = shown.symmetric_difference(&expected).count();
    if mismatches > 0 {
        eprintln!("[loadgen] seat map differs from bookings in {mismatches} seats");
    }
    let invariants_hold =
        duplicates == 0 && mismatches == 0 && unresolved == 0 && server_errors == 0;
    let decided = outcomes
        .iter()
        .filter(|o| o.booking.is_some() || matches!(o.status, 409 | 422))
        .count();
    Ok(Summary {
        event_id,
        capacity,
        requests: outcomes.len(),
        outcomes: by_code,
        deferred_then_resolved: deferred,
        unresolved,
        server_errors,
        shed: shed_latencies.len(),
        shed_latency_ms_p99: percentile(&shed_latencies, 0.99),
        held_bookings: held,
        confirmed_bookings: confirmed,
        seats_taken: owner.len(),
        duplicate_seats: duplicates,
        seat_map_mismatches: mismatches,
        elapsed_s: elapsed.as_secs_f64(),
        requests_per_s: outcomes.len() as f64 / elapsed.as_secs_f64(),
        decisions_per_s: decided as f64 / elapsed.as_secs_f64(),
        arrival_rate: args.rate,
        ramp_s: args.ramp_secs,
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p90: percentile(&latencies, 0.90),
        latency_ms_p99: percentile(&latencies, 0.99),
        latency_ms_p999: percentile(&latencies, 0.999),
        latency_ms_max: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        invariants_hold,
    })
}

/// A random request: explicit adjacent seats in a random row, or
/// best-available in a random section.
fn random_request(spec: &EventSpec, args: &LoadgenArgs, rng: &mut impl Rng) -> Value {
    let quantity = rng.random_range(1..=args.max_quantity.max(1));
    let section = &spec.venue.sections[rng.random_range(0..spec.venue.sections.len())];
    if rng.random_bool(args.explicit_share.clamp(0.0, 1.0)) {
        let row = &section.rows[rng.random_range(0..section.rows.len())];
        let quantity = quantity.min(row.seats);
        let first = rng.random_range(1..=row.seats - quantity + 1);
        let seats: Vec<String> = (first..first + quantity)
            .map(|n| format!("{}-{}-{n}", section.code, row.label))
            .collect();
        json!({ "seats": seats })
    } else {
        json!({ "section": section.code, "quantity": quantity })
    }
}

/// One buyer: request, follow a 202 to its outcome, then confirm, cancel or
/// keep the hold. The latency is from `arrival` to the decision: the first
/// answer, or the long poll's after a 202.
async fn book(
    c: &Client<'_>,
    event_id: &str,
    body: Value,
    after: AfterHold,
    n: usize,
    arrival: Instant,
) -> Outcome {
    let started = arrival;
    let key = format!("loadgen-{n}");
    let sent = c
        .send(|| {
            c.http
                .post(format!("{}/api/events/{event_id}/bookings", c.api))
                .header("Idempotency-Key", &key)
                .json(&body)
        })
        .await;
    let outcome = |status, code: String, booking| Outcome {
        status,
        code,
        latency: started.elapsed(),
        booking,
        token: c.token.to_owned(),
    };
    let res = match sent {
        Ok(r) => r,
        Err(e) => return outcome(0, format!("transport: {e}"), None),
    };
    let status = res.status().as_u16();
    let json: Value = res.json().await.unwrap_or(Value::Null);
    let (code, mut booking) = match status {
        201 | 200 => ("held".to_owned(), Some(json)),
        202 => {
            let id = json["id"].as_str().unwrap_or_default().to_owned();
            match poll(c, &id).await {
                Some(b) => (
                    format!("deferred_{}", b["status"].as_str().unwrap_or("unknown")),
                    Some(b),
                ),
                None => {
                    eprintln!("[loadgen] request {n}: booking {id} got no outcome within 60 s");
                    ("unresolved".to_owned(), None)
                }
            }
        }
        _ => (json["code"].as_str().unwrap_or("unknown").to_owned(), None),
    };
    let latency = started.elapsed();
    if let Some(b) = &booking
        && b["status"] == "held"
    {
        let url = format!(
            "{}/api/bookings/{}",
            c.api,
            b["id"].as_str().unwrap_or_default()
        );
        let answer = match after {
            AfterHold::Confirm => {
                let pay = json!({ "payment_reference": format!("pay-{n}") });
                c.send(|| c.http.post(format!("{url}/confirm")).json(&pay))
                    .await
            }
            AfterHold::Cancel => c.send(|| c.http.delete(&url)).await,
            AfterHold::Keep => {
                return Outcome {
                    latency,
                    ..outcome(status, code, booking)
                };
            }
        };
        match answer {
            Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                // Deferred: what counts is the decision, once it is made.
                booking = settle(c, b).await.or(booking);
            }
            Ok(r) if r.status().is_success() => booking = r.json().await.ok(),
            _ => {}
        }
    }
    Outcome {
        latency,
        ..outcome(status, code, booking)
    }
}

/// A held booking after a confirm or cancel answered 202: re-read until its
/// status moves on (up to 60 s).
async fn settle(c: &Client<'_>, held: &Value) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(now) = current(c.http, c.api, c.token, held).await
            && now["status"] != "held"
        {
            return Some(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

async fn poll(c: &Client<'_>, id: &str) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = as_buyer(
            c.http
                .get(format!("{}/api/bookings/{id}?wait_ms=10000", c.api)),
            c.token,
        )
        .send()
        .await
            && r.status().is_success()
        {
            return r.json().await.ok();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn report(args: &LoadgenArgs, s: &Summary) -> String {
    let host = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    format!(
        "# Load run {date}\n\nMachine: {cores} cores ({host}), everything on one host.\n\n\
         Command: `boxoffice loadgen --api {apis} --requests {req} --concurrency {conc}{open} --explicit-share {ex} --confirm-share {cf} --max-quantity {mq}`\n\n\
         | figure | value |\n|---|---|\n\
         | seats | {cap} |\n| requests | {n} |\n| elapsed | {el:.2} s |\n| requests/s | {rps:.0} |\n| decisions/s | {dps:.0} |\n\
         | latency from arrival to decision (not shed) p50 / p90 / p99 / p99.9 / max | {p50:.1} / {p90:.1} / {p99:.1} / {p999:.1} / {max:.1} ms |\n\
         | held / confirmed bookings | {held} / {conf} |\n| seats taken | {taken} |\n\
         | answered late (202, then resolved) | {def} |\n| unresolved | {unres} |\n| 5xx (overload not included) | {err} |\n\
         | shed under overload (503 overloaded) / their p99 | {shed} / {shed_p99:.1} ms |\n\
         | seats given twice | {dup} |\n| seat map mismatches | {mis} |\n\nOutcomes: `{outcomes}`\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        apis = args.apis.join(","),
        req = args.requests,
        conc = args.concurrency,
        open = args.rate.map_or_else(String::new, |r| format!(
            " --rate {r} --ramp-secs {}",
            args.ramp_secs
        )),
        ex = args.explicit_share,
        cf = args.confirm_share,
        mq = args.max_quantity,
        cap = s.capacity,
        n = s.requests,
        el = s.elapsed_s,
        rps = s.requests_per_s,
        dps = s.decisions_per_s,
        p50 = s.latency_ms_p50,
        p90 = s.latency_ms_p90,
        p99 = s.latency_ms_p99,
        p999 = s.latency_ms_p999,
        max = s.latency_ms_max,
        held = s.held_bookings,
        conf = s.confirmed_bookings,
        taken = s.seats_taken,
        def = s.deferred_then_resolved,
        unres = s.unresolved,
        err = s.server_errors,
        shed = s.shed,
        shed_p99 = s.shed_latency_ms_p99,
        dup = s.duplicate_seats,
        mis = s.seat_map_mismatches,
        outcomes = serde_json::to_string(&s.outcomes).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::arrival_offset;

    #[test]
    fn arrivals_ramp_up_to_the_rate_and_then_hold_it() {
        let at = |i| arrival_offset(i, 100.0, 10.0).as_secs_f64();
        // The ramp brings 100 * 10 / 2 = 500 buyers in 10 s, slowly at first.
        assert_eq!(at(0), 0.0);
        assert!((at(500) - 10.0).abs() < 1e-9);
        assert!(
            at(125) > 4.9 && at(125) < 5.1,
            "a quarter of the ramp's buyers by half its time"
        );
        // Then one every 10 ms.
        assert!((at(600) - 11.0).abs() < 1e-9);
        for i in 1..2_000 {
            assert!(at(i) > at(i - 1), "arrivals are in order");
        }
        // Without a ramp: evenly spread from the start.
        assert!((arrival_offset(250, 100.0, 0.0).as_secs_f64() - 2.5).abs() < 1e-9);
    }
}
