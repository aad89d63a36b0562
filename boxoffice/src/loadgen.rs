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
use boxoffice_domain::{EventSpec, WaitingRoom};
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
    /// A sale behind a waiting room letting this many buyers in per minute
    /// (docs/waiting-room.md): the new event opens `--waiting-room-lead-secs`
    /// after every buyer has a token, every buyer joins before that, follows
    /// its place (asking again as `Retry-After` says), and books from its
    /// turn with its place's token. The summary adds how fast buyers were
    /// let in against this rate.
    #[arg(long)]
    pub waiting_room_rate: Option<u32>,
    /// With `--waiting-room-rate`: seconds from the end of sign-in to the
    /// sale's opening, in which every buyer joins.
    #[arg(long, default_value_t = 15)]
    pub waiting_room_lead_secs: u32,
    /// Hot seat: explicit picks all aim at the first this many seats of the
    /// first row of the first section (each pick starts at one of them), so
    /// many buyers race for the same few seats. 0: picks spread over the
    /// venue.
    #[arg(long, default_value_t = 0)]
    pub hot_seats: u16,
    /// Browse: this many readers fetch the event's seat map (compact form)
    /// again and again, each as soon as the last one answered, while the
    /// spike runs; the summary adds their reads/s and latency.
    #[arg(long, default_value_t = 0)]
    pub readers: usize,
    /// Browse: this many live seat-map subscribers (SSE) stay connected
    /// during the spike; the summary adds the messages they received.
    #[arg(long, default_value_t = 0)]
    pub subscribers: usize,
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
    /// Behind a waiting room: how the buyer got their turn.
    admission: Option<Admission>,
}

/// One buyer's way through the waiting room.
#[derive(Debug, Clone)]
struct Admission {
    /// The turn the waiting room gave (ms since the epoch).
    turn_ms: i64,
    /// When the first booking request was let through (not refused by the
    /// waiting room), ms since the epoch.
    let_in_ms: i64,
    /// Calls to the waiting room (the join and every ask after it).
    calls: usize,
    /// Booking requests refused `not_admitted_yet` at the turn (this
    /// machine's clock ahead of Redis').
    early: usize,
    /// Latency of the join call, and when it was answered (ms).
    join: Duration,
    joined_ms: i64,
    /// A request sent on purpose before the turn: whether one was, and
    /// whether the API let it through (it must not).
    probed: bool,
    probe_let_through: bool,
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
    /// Behind a waiting room: the rate asked for and the rate buyers were
    /// let in at.
    waiting_room: Option<AdmissionSummary>,
    /// The load generator's own CPU over the spike, % of one core: it
    /// shares the machine with what it measures.
    cpu_percent: Option<f64>,
    /// With `--readers` or `--subscribers`: the browsing beside the spike.
    browse: Option<BrowseSummary>,
}

/// How a waiting room let the buyers in.
#[derive(Serialize)]
struct AdmissionSummary {
    admissions_per_minute: u32,
    /// Buyers given a turn (all who joined).
    turns: usize,
    /// Buyers whose booking went through the waiting room.
    let_in: usize,
    /// Turns given per minute, from the first turn to the last.
    turns_per_minute: f64,
    /// Buyers let in per minute, from the first let in to the last.
    let_in_per_minute: f64,
    /// Most turns in any one-second span, and what the rate allows in one.
    most_turns_in_a_second: usize,
    allowed_in_a_second: usize,
    /// From a buyer's turn to their request being let through (ms).
    lateness_ms_p50: f64,
    lateness_ms_p99: f64,
    /// Requests sent on purpose before the turn, and of those the ones the
    /// API let through (must be 0).
    probed_before_turn: usize,
    let_in_before_turn: usize,
    /// Requests at the turn refused `not_admitted_yet` (a clock ahead).
    refused_early: usize,
    /// Calls to the waiting room per buyer, and the join's latency.
    calls_per_buyer: f64,
    join_ms_p50: f64,
    join_ms_p99: f64,
    /// Whether the turns came in an order other than the order in which
    /// the joins were answered (the draw).
    drawn_at_random: bool,
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
    anyhow::ensure!(
        args.waiting_room_rate.is_none() || args.event.is_none(),
        "--waiting-room-rate creates its own event: leave out --event"
    );
    // Behind a waiting room, every buyer signs in first: the sale then
    // opens a little later, and all of them join before it does.
    let mut tokens = match args.waiting_room_rate {
        Some(_) => sign_in(&http, &apis, args.requests).await?,
        None => Vec::new(),
    };
    let event_id = match &args.event {
        Some(e) => e.clone(),
        None => {
            let token = demo::organizer_token(&http, &apis[0], &args.organizer_password).await?;
            let now = chrono::Utc::now().timestamp_millis();
            let opens = match args.waiting_room_rate {
                Some(_) => now + i64::from(args.waiting_room_lead_secs) * 1000,
                None => now - 60_000,
            };
            let mut spec = EventSpec::demo(
                "loadgen spike",
                args.sections,
                args.rows,
                args.seats_per_row,
                opens,
            );
            spec.max_seats_per_buyer = args.max_quantity.max(1);
            spec.parts = args.parts;
            spec.waiting_room = args.waiting_room_rate.map(|rate| WaitingRoom {
                admissions_per_minute: rate,
                opens_minutes_before: 60,
                shopping_minutes: 10,
            });
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

    // Sign every buyer in before the spike.
    if tokens.is_empty() {
        tokens = sign_in(&http, &apis, args.requests).await?;
    }
    let room = spec.waiting_room;

    let mut rng = args.seed.map_or_else(
        rand::rngs::StdRng::from_os_rng,
        rand::rngs::StdRng::seed_from_u64,
    );
    let semaphore = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let progress = Arc::new(Progress::default());
    let browsing = Browse::start(&http, &apis, &event_id, args.readers, args.subscribers);
    // bench/run.sh waits for this line to measure (and profile) the spike
    // alone, not the sign-ins before it.
    eprintln!("{SPIKE_BEGINS}");
    let cpu_before = own_cpu_secs();
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
            let client = Client {
                http: &http,
                api: &api,
                token: &token,
                retry,
            };
            let place = match room {
                Some(_) => match join(&client, &event_id, &semaphore).await {
                    Ok(mut place) => {
                        // Wait for the turn holding no connection slot,
                        // trying once just before it.
                        await_turn(&client, &event_id, &body, i, &mut place, &semaphore).await;
                        Some(place)
                    }
                    Err(outcome) => {
                        progress.answered(outcome.latency);
                        return *outcome;
                    }
                },
                None => None,
            };
            let _permit = semaphore.acquire().await.expect("semaphore open");
            let arrival = if place.is_some() {
                Instant::now()
            } else {
                arrival
            };
            let outcome = book(&client, &event_id, body, after, i, arrival, place).await;
            progress.answered(outcome.latency);
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await?);
    }
    let elapsed = started.elapsed();
    let browse = browsing.stop(elapsed).await;
    let cpu = own_cpu_secs()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
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
    let waiting_room = room.map(|r| admissions(r, &outcomes));
    let invariants_hold = duplicates == 0
        && mismatches == 0
        && unresolved == 0
        && server_errors == 0
        && waiting_room
            .as_ref()
            .is_none_or(|w| w.let_in_before_turn == 0);
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
        waiting_room,
        cpu_percent: cpu.map(|c| c * 100.0 / elapsed.as_secs_f64()),
        browse,
    })
}

/// Seat-map readers and live subscribers running beside the spike.
struct Browse {
    stop: Arc<std::sync::atomic::AtomicBool>,
    readers: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
    subscribers: Vec<tokio::task::JoinHandle<usize>>,
}

/// What the browsing buyers saw during the spike.
#[derive(Serialize)]
struct BrowseSummary {
    readers: usize,
    reads: usize,
    reads_per_s: f64,
    /// Reads answered other than 200 (or not at all).
    read_errors: usize,
    read_latency_ms_p50: f64,
    read_latency_ms_p99: f64,
    subscribers: usize,
    /// Seat-map messages (SSE events) the subscribers received, in all.
    subscriber_messages: usize,
}

impl Browse {
    fn start(
        http: &reqwest::Client,
        apis: &[String],
        event_id: &str,
        readers: usize,
        subscribers: usize,
    ) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = |i: usize| {
            let (http, stop) = (http.clone(), stop.clone());
            let url = format!(
                "{}/api/events/{event_id}/seats?encoding=compact",
                apis[i % apis.len()]
            );
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let at = Instant::now();
                    let ok = match http
                        .get(&url)
                        .header(
                            "X-Forwarded-For",
                            simulated_address(("reader", i, latencies.len() + errors)),
                        )
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    if ok {
                        latencies.push(at.elapsed());
                    } else {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                (latencies, errors)
            })
        };
        let subscriber = |i: usize| {
            let (http, stop) = (http.clone(), stop.clone());
            let url = format!(
                "{}/api/events/{event_id}/seats/stream",
                apis[i % apis.len()]
            );
            tokio::spawn(async move {
                let Ok(mut r) = http
                    .get(&url)
                    .header("X-Forwarded-For", simulated_address(("subscriber", i)))
                    .send()
                    .await
                else {
                    return 0;
                };
                let mut messages = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(200), r.chunk()).await {
                        Ok(Ok(Some(chunk))) => {
                            messages += chunk.windows(2).filter(|w| w == b"\n\n").count()
                        }
                        Ok(_) => break,
                        Err(_) => {}
                    }
                }
                messages
            })
        };
        Self {
            readers: (0..readers).map(reader).collect(),
            subscribers: (0..subscribers).map(subscriber).collect(),
            stop,
        }
    }

    async fn stop(self, elapsed: Duration) -> Option<BrowseSummary> {
        if self.readers.is_empty() && self.subscribers.is_empty() {
            return None;
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut latencies, mut read_errors) = (Vec::new(), 0);
        let readers = self.readers.len();
        for r in self.readers {
            if let Ok((l, e)) = r.await {
                latencies.extend(l);
                read_errors += e;
            }
        }
        latencies.sort_unstable();
        let subscribers = self.subscribers.len();
        let mut subscriber_messages = 0;
        for s in self.subscribers {
            subscriber_messages += s.await.unwrap_or(0);
        }
        Some(BrowseSummary {
            readers,
            reads: latencies.len(),
            reads_per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
            read_errors,
            read_latency_ms_p50: percentile(&latencies, 0.50),
            read_latency_ms_p99: percentile(&latencies, 0.99),
            subscribers,
            subscriber_messages,
        })
    }
}

/// What the load generator prints when the first buyer of the spike is
/// about to arrive.
pub const SPIKE_BEGINS: &str = "[loadgen] the spike begins";

/// CPU time this process has used (user and system, seconds), from
/// `/proc/self/stat`; `None` where there is no procfs.
fn own_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count from after it.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux ABI Rust targets.
    Some(ticks / 100.0)
}

/// A guest token per buyer, each from an address of its own.
async fn sign_in(
    http: &reqwest::Client,
    apis: &[String],
    buyers: usize,
) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(buyers);
    for i in 0..buyers {
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
        if (i + 1) % 5_000 == 0 {
            eprintln!("[loadgen] {} of {buyers} buyers signed in", i + 1);
        }
    }
    Ok(tokens)
}

/// A buyer's place: its newest token, its turn, how it got there.
struct Place {
    token: String,
    admission: Admission,
}

fn retry_after(r: &reqwest::Response) -> Duration {
    r.headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .map_or(Duration::from_secs(2), Duration::from_secs)
}

/// Joins the waiting room and follows the place until its turn is known,
/// asking again when `Retry-After` says (in flight only while asking).
async fn join(c: &Client<'_>, event_id: &str, slots: &Semaphore) -> Result<Place, Box<Outcome>> {
    let url = format!("{}/api/events/{event_id}/waiting-room", c.api);
    let started = Instant::now();
    let failed = |status: u16, code: String| {
        Box::new(Outcome {
            status,
            code,
            latency: started.elapsed(),
            booking: None,
            token: c.token.to_owned(),
            admission: None,
        })
    };
    let mut token: Option<String> = None;
    let (mut calls, mut join_latency, mut joined_ms) = (0, Duration::ZERO, 0);
    loop {
        let answer = {
            let _permit = slots.acquire().await.expect("semaphore open");
            let sent = c
                .send(|| match &token {
                    None => c.http.post(&url),
                    Some(t) => c.http.get(&url).header("Waiting-Room-Token", t),
                })
                .await;
            calls += 1;
            if calls == 1 {
                join_latency = started.elapsed();
                joined_ms = chrono::Utc::now().timestamp_millis();
            }
            match sent {
                Ok(r) => r,
                Err(e) => return Err(failed(0, format!("transport: {e}"))),
            }
        };
        let status = answer.status().as_u16();
        let wait = retry_after(&answer);
        let place: Value = answer.json().await.unwrap_or(Value::Null);
        if status != 200 {
            let code = place["code"].as_str().unwrap_or("unknown");
            return Err(failed(status, format!("waiting_room_{code}")));
        }
        token = place["token"].as_str().map(str::to_owned);
        let turn = place["turn_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if let (Some(turn), Some(token)) = (turn, &token) {
            return Ok(Place {
                token: token.clone(),
                admission: Admission {
                    turn_ms: turn.timestamp_millis(),
                    let_in_ms: 0,
                    calls,
                    early: 0,
                    join: join_latency,
                    joined_ms,
                    probed: false,
                    probe_let_through: false,
                },
            });
        }
        tokio::time::sleep(wait).await;
    }
}

fn booking_key(n: usize) -> String {
    format!("loadgen-{n}")
}

/// Buyer `n`'s booking request, with its place's token behind a waiting room.
fn booking_request(
    c: &Client<'_>,
    event_id: &str,
    key: &str,
    body: &Value,
    place: Option<&Place>,
) -> reqwest::RequestBuilder {
    let r = c
        .http
        .post(format!("{}/api/events/{event_id}/bookings", c.api))
        .header("Idempotency-Key", key)
        .json(body);
    match place {
        Some(p) => r.header("Waiting-Room-Token", &p.token),
        None => r,
    }
}

/// An answer that got past the waiting room to a decision: held (now or
/// later) or refused by the seat-processor.
fn decided(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 200 | 201 | 202 | 409)
}

/// Sleeps until the buyer's turn. A turn more than 1.5 s off is first
/// tried 0.7 s early, which the API must refuse `not_admitted_yet`: the
/// measure of whether it ever lets a buyer in before their turn.
async fn await_turn(
    c: &Client<'_>,
    event_id: &str,
    body: &Value,
    n: usize,
    place: &mut Place,
    slots: &Semaphore,
) {
    let until = |ms: i64| {
        let wait = ms - chrono::Utc::now().timestamp_millis();
        tokio::time::sleep(Duration::from_millis(wait.max(0) as u64))
    };
    let turn = place.admission.turn_ms;
    if turn - chrono::Utc::now().timestamp_millis() > 1_500 {
        until(turn - 700).await;
        let answer = {
            let _permit = slots.acquire().await.expect("semaphore open");
            let request = booking_request(c, event_id, &booking_key(n), body, Some(place));
            as_buyer(request, c.token).send().await
        };
        // Only a refusal at the door is right; one that reached a decision
        // let the buyer in early. (An answer after the turn proves nothing.)
        if chrono::Utc::now().timestamp_millis() < turn {
            place.admission.probed = true;
            place.admission.probe_let_through = answer.is_ok_and(|r| decided(r.status()));
        }
    }
    until(turn).await;
}

/// How the waiting room let the buyers in, against its rate.
fn admissions(room: WaitingRoom, outcomes: &[Outcome]) -> AdmissionSummary {
    let mut seen: Vec<&Admission> = outcomes
        .iter()
        .filter_map(|o| o.admission.as_ref())
        .collect();
    seen.sort_by_key(|a| a.joined_ms);
    let mut turns: Vec<i64> = seen.iter().map(|a| a.turn_ms).collect();
    let in_join_order = turns.windows(2).all(|w| w[0] <= w[1]);
    turns.sort_unstable();
    let mut let_in: Vec<i64> = seen
        .iter()
        .filter(|a| a.let_in_ms > 0)
        .map(|a| a.let_in_ms)
        .collect();
    let_in.sort_unstable();
    let per_minute = |xs: &[i64]| match (xs.first(), xs.last()) {
        (Some(a), Some(b)) if b > a => (xs.len() - 1) as f64 * 60_000.0 / (b - a) as f64,
        _ => 0.0,
    };
    let most_turns_in_a_second = (0..turns.len())
        .map(|i| {
            turns[i..]
                .iter()
                .take_while(|&&t| t < turns[i] + 1000)
                .count()
        })
        .max()
        .unwrap_or(0);
    let mut lateness: Vec<Duration> = seen
        .iter()
        .filter(|a| a.let_in_ms >= a.turn_ms)
        .map(|a| Duration::from_millis((a.let_in_ms - a.turn_ms) as u64))
        .collect();
    lateness.sort_unstable();
    let mut joins: Vec<Duration> = seen.iter().map(|a| a.join).collect();
    joins.sort_unstable();
    AdmissionSummary {
        admissions_per_minute: room.admissions_per_minute,
        turns: turns.len(),
        let_in: let_in.len(),
        turns_per_minute: per_minute(&turns),
        let_in_per_minute: per_minute(&let_in),
        most_turns_in_a_second,
        allowed_in_a_second: (1000 / room.interval_ms() + 1) as usize,
        lateness_ms_p50: percentile(&lateness, 0.5),
        lateness_ms_p99: percentile(&lateness, 0.99),
        probed_before_turn: seen.iter().filter(|a| a.probed).count(),
        let_in_before_turn: seen.iter().filter(|a| a.probe_let_through).count(),
        refused_early: seen.iter().map(|a| a.early).sum(),
        calls_per_buyer: seen.iter().map(|a| a.calls).sum::<usize>() as f64
            / seen.len().max(1) as f64,
        join_ms_p50: percentile(&joins, 0.5),
        join_ms_p99: percentile(&joins, 0.99),
        drawn_at_random: !in_join_order,
    }
}

/// A random request: explicit adjacent seats in a random row, or
/// best-available in a random section.
fn random_request(spec: &EventSpec, args: &LoadgenArgs, rng: &mut impl Rng) -> Value {
    let quantity = rng.random_range(1..=args.max_quantity.max(1));
    let section = &spec.venue.sections[rng.random_range(0..spec.venue.sections.len())];
    if !rng.random_bool(args.explicit_share.clamp(0.0, 1.0)) {
        return json!({ "section": section.code, "quantity": quantity });
    }
    // An explicit pick: a run of seats in one row; with --hot-seats, always
    // the first row of the first section, starting at one of its hot seats.
    let hot = args.hot_seats > 0;
    let (section, row) = if hot {
        (&spec.venue.sections[0], &spec.venue.sections[0].rows[0])
    } else {
        (
            section,
            &section.rows[rng.random_range(0..section.rows.len())],
        )
    };
    let quantity = quantity.min(row.seats);
    let last_start = row.seats - quantity + 1;
    let last_start = if hot {
        last_start.min(args.hot_seats)
    } else {
        last_start
    };
    let first = rng.random_range(1..=last_start);
    let seats: Vec<String> = (first..first + quantity)
        .map(|n| format!("{}-{}-{n}", section.code, row.label))
        .collect();
    json!({ "seats": seats })
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
    place: Option<Place>,
) -> Outcome {
    let key = booking_key(n);
    let mut admission = place.as_ref().map(|p| p.admission.clone());
    // Behind a waiting room, `arrival` is the buyer's turn.
    let started = arrival;
    let request = || booking_request(c, event_id, &key, &body, place.as_ref());
    let sent = loop {
        let sent_at = chrono::Utc::now().timestamp_millis();
        let sent = c.send(&request).await;
        let status = sent.as_ref().ok().map(|r| r.status());
        // `not_admitted_yet` is the one refusal with a Retry-After: sent
        // before the turn by a clock ahead of Redis'; ask again when told.
        let early = status == Some(reqwest::StatusCode::FORBIDDEN)
            && sent
                .as_ref()
                .is_ok_and(|r| r.headers().contains_key("Retry-After"));
        match admission.as_mut() {
            Some(a) if early && a.early < 30 => {
                a.early += 1;
                let wait = sent.as_ref().map_or(Duration::from_secs(1), retry_after);
                tokio::time::sleep(wait).await;
            }
            Some(a) if status.is_some_and(decided) => {
                a.let_in_ms = sent_at;
                break sent;
            }
            _ => break sent,
        }
    };
    let outcome = |status, code: String, booking| Outcome {
        status,
        code,
        latency: started.elapsed(),
        booking,
        token: c.token.to_owned(),
        admission: admission.clone(),
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
         | seats given twice | {dup} |\n| seat map mismatches | {mis} |\n\nOutcomes: `{outcomes}`\n{room}",
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
        )) + &args.waiting_room_rate.map_or_else(String::new, |r| format!(
            " --waiting-room-rate {r} --waiting-room-lead-secs {}",
            args.waiting_room_lead_secs
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
        room = s.waiting_room.as_ref().map_or_else(String::new, |w| format!(
            "\n## The waiting room\n\nThe sale opened {lead} s after sign-in; buyers joined as they arrived, \
             followed their place (asking again when `Retry-After` said) and sent their booking at their turn, \
             on this machine's clock. The turns are the API's (Redis'); the buyers let in are those whose request \
             got past the waiting room to a decision (held, or refused for seats). A turn more than 1.5 s off was \
             first tried 0.7 s early: the API must refuse every such request.\n\n| figure | value |\n|---|---|\n\
             | buyers let in per minute: set | {set} |\n| turns the API gave, per minute (first to last turn) | {tpm:.1} |\n\
             | buyers let in per minute (first to last request let through) | {lpm:.1} |\n\
             | turns / buyers let in | {turns} / {let_in} |\n\
             | most turns in any one second / the rate allows | {most} / {allowed} |\n\
             | from turn to the request let through p50 / p99 | {l50:.1} / {l99:.1} ms |\n\
             | tried before the turn / let through (must be 0) | {probed} / {before} |\n\
             | refused `not_admitted_yet` at the turn | {early} |\n\
             | waiting-room calls per buyer | {calls:.2} |\n| join latency p50 / p99 | {j50:.1} / {j99:.1} ms |\n\
             | turns in an order other than joining (the draw) | {random} |\n",
            lead = args.waiting_room_lead_secs,
            set = w.admissions_per_minute,
            tpm = w.turns_per_minute,
            lpm = w.let_in_per_minute,
            turns = w.turns,
            let_in = w.let_in,
            most = w.most_turns_in_a_second,
            allowed = w.allowed_in_a_second,
            l50 = w.lateness_ms_p50,
            l99 = w.lateness_ms_p99,
            probed = w.probed_before_turn,
            before = w.let_in_before_turn,
            early = w.refused_early,
            calls = w.calls_per_buyer,
            j50 = w.join_ms_p50,
            j99 = w.join_ms_p99,
            random = w.drawn_at_random,
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::{LoadgenArgs, arrival_offset, random_request};
    use boxoffice_domain::EventSpec;
    use clap::Parser;
    use rand::SeedableRng;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadgenArgs,
    }

    #[test]
    fn hot_seat_picks_all_start_among_the_hot_seats_and_others_spread() {
        let spec = EventSpec::demo("t", 4, 25, 100, 0);
        let hot = Cli::parse_from(["t", "--hot-seats", "3", "--explicit-share", "1"]).args;
        let spread = Cli::parse_from(["t", "--explicit-share", "1"]).args;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let first = spec.venue.sections[0].code.clone();
        let row = spec.venue.sections[0].rows[0].label.clone();
        let mut starts = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let pick = random_request(&spec, &hot, &mut rng);
            let seats = pick["seats"].as_array().expect("an explicit pick");
            let start = seats[0].as_str().unwrap().to_owned();
            assert!(start.starts_with(&format!("{first}-{row}-")), "{start}");
            starts.insert(start.rsplit('-').next().unwrap().parse::<u16>().unwrap());
        }
        assert_eq!(
            starts,
            (1..=3).collect(),
            "every hot seat is aimed at, nothing else"
        );
        let elsewhere = (0..500)
            .map(|_| random_request(&spec, &spread, &mut rng))
            .filter(|p| {
                !p["seats"][0]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{first}-{row}-"))
            })
            .count();
        assert!(
            elsewhere > 400,
            "without --hot-seats picks spread over the venue"
        );
        // Beside best-available requests, every explicit pick is a hot one.
        let half = Cli::parse_from(["t", "--hot-seats", "3"]).args;
        let picks: Vec<_> = (0..500)
            .map(|_| random_request(&spec, &half, &mut rng))
            .filter(|p| p.get("seats").is_some())
            .collect();
        assert!(picks.len() > 150, "about half are explicit picks");
        for p in picks {
            let start = p["seats"][0].as_str().unwrap();
            assert!(start.starts_with(&format!("{first}-{row}-")), "{start}");
        }
    }

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
