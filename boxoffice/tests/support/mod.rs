//! A private boxoffice system per test: its own topics (prefix), database,
//! Redis keys and RocksDB folder, sharing the local broker, PostgreSQL and
//! Redis started by `scripts/stack.sh up`. Roles run as real processes of the
//! `boxoffice` binary, so tests can kill them.

#![allow(dead_code)]

pub mod kafka;
pub mod postgres;
pub mod proxy;
pub mod registry;
pub mod stores;

use std::collections::HashMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// Every test's API runs as the local stack does (built-in secrets, the
/// web app on this machine trusted as a proxy), with rate limits far above
/// what any test sends from this one address: they are still checked in
/// Redis on every call. `boxoffice/tests/front_door.rs` sets them low.
pub const LOCAL_FRONT_DOOR: &[(&str, &str)] = &[
    ("BOXOFFICE_ENV", "local"),
    ("BOXOFFICE_TRUSTED_PROXIES", "127.0.0.1/32,::1/128"),
    ("BOXOFFICE_LIMIT_ADDRESS", "100000/s:100000"),
    ("BOXOFFICE_LIMIT_BUYER", "100000/s:100000"),
    ("BOXOFFICE_LIMIT_NEW_BUYERS", "100000/s:100000"),
    ("BOXOFFICE_LIMIT_SIGN_IN", "100000/s:100000"),
    ("BOXOFFICE_LIMIT_ACCOUNT_SIGN_IN", "100000/s:100000"),
    ("BOXOFFICE_LIMIT_WAITING_ROOM", "100000/s:100000"),
    ("BOXOFFICE_STREAMS_PER_CLIENT", "1000"),
    ("BOXOFFICE_LIMIT_READS", "100000/s:100000"),
    ("BOXOFFICE_LONG_POLLS_PER_BUYER", "1000"),
];

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A running role.
pub struct RoleProcess {
    pub role: String,
    pub port: u16,
    child: Child,
    log: PathBuf,
}

pub struct Stack {
    pub prefix: String,
    pub database: String,
    pub dir: PathBuf,
    pub roles: HashMap<String, RoleProcess>,
    pub extra_env: Vec<(String, String)>,
    pub http: reqwest::Client,
    /// The PostgreSQL server the roles use (the shared one unless a test
    /// runs its own).
    pub pg_server: String,
}

impl Stack {
    pub fn new(name: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let dir = std::env::temp_dir().join(format!("boxoffice-test-{name}-{id}"));
        std::fs::create_dir_all(dir.join("logs")).expect("test dir");
        Self {
            prefix: format!("t-{name}-{id}-"),
            database: format!("bx_test_{id}"),
            dir,
            roles: HashMap::new(),
            extra_env: vec![],
            http: reqwest::Client::new(),
            pg_server: PG_SERVER.to_owned(),
        }
    }

    /// Points the roles started from now on at `broker` (a test's own).
    pub fn use_broker(&mut self, broker: &Broker) {
        self.extra_env
            .push(("KAFKA_BOOTSTRAP_SERVERS".into(), broker.address()));
    }

    /// The broker the roles use (the shared one unless a test runs its own).
    pub fn broker(&self) -> String {
        self.extra_env
            .iter()
            .find(|(k, _)| k == "KAFKA_BOOTSTRAP_SERVERS")
            .map_or_else(|| kafka::BROKER.to_owned(), |(_, v)| v.clone())
    }

    pub fn database_url(&self) -> String {
        format!("{}/{}", self.pg_server, self.database)
    }

    /// Starts `role` as `instance`; waits until it is ready.
    pub async fn start(&mut self, role: &str, instance: &str) -> u16 {
        self.start_with(role, instance, &[]).await
    }

    /// Starts `role` as `instance` with `env` over the usual settings.
    pub async fn start_with(&mut self, role: &str, instance: &str, env: &[(&str, &str)]) -> u16 {
        // An instance started again after a crash keeps its port, as a pod
        // keeps its Service: the API reaches the reservation-processor at
        // one address, and a restarted one must answer there again.
        let port = self
            .roles
            .get(instance)
            .or_else(|| self.roles.get(&format!("{instance}-killed")))
            .map_or_else(free_port, |r| r.port);
        let log = self.dir.join("logs").join(format!("{instance}.log"));
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let reservation = self
            .roles
            .values()
            .find(|r| r.role == "reservation-processor")
            .map(|r| r.port);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_boxoffice"));
        cmd.arg(role)
            .env("BOXOFFICE_PORT", port.to_string())
            .env("BOXOFFICE_INSTANCE", instance)
            .env("BOXOFFICE_TOPIC_PREFIX", &self.prefix)
            .env("BOXOFFICE_REDIS_PREFIX", &self.prefix)
            .env("BOXOFFICE_PARTITIONS", "4")
            .env("DATABASE_URL", self.database_url())
            .env("BOXOFFICE_STATE_DIR", self.dir.join("state"))
            .env("BOXOFFICE_EXPIRY_SWEEP_MS", "200")
            .envs(LOCAL_FRONT_DOOR.iter().copied())
            .env("RUST_LOG", "info,rdkafka=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        if let Some(p) = reservation {
            cmd.env("BOXOFFICE_RESERVATION_URL", format!("http://127.0.0.1:{p}"));
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn boxoffice");
        self.roles.insert(
            instance.to_owned(),
            RoleProcess {
                role: role.to_owned(),
                port,
                child,
                log,
            },
        );
        self.wait_ready(instance).await;
        port
    }

    /// The readiness URL of a running instance.
    pub fn ready_url(&self, instance: &str) -> String {
        format!(
            "http://127.0.0.1:{}/health/ready",
            self.roles[instance].port
        )
    }

    pub async fn wait_ready(&mut self, instance: &str) {
        let url = self.ready_url(instance);
        let started = Instant::now();
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self
                .roles
                .get_mut(instance)
                .and_then(|r| r.child.try_wait().ok().flatten())
            {
                panic!(
                    "{instance} exited with {status} before it was ready:\n{}",
                    self.log_tail(instance, 40)
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{instance} not ready after 90s:\n{}",
                self.log_tail(instance, 40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One seat-processor and one reservation-processor, then the API
    /// instances named in `apis`, each with its settings over the defaults.
    pub async fn with_apis(name: &str, apis: &[(&str, &[(&str, &str)])]) -> Self {
        let mut stack = Self::new(name);
        stack.start("reservation-processor", "reservation-1").await;
        stack.start("seat-processor", "seat-1").await;
        for (instance, env) in apis {
            stack.start_with("api", instance, env).await;
        }
        stack
    }

    /// The usual system: one of each role.
    pub async fn start_all(&mut self) -> String {
        self.start("reservation-processor", "reservation-1").await;
        self.start("seat-processor", "seat-1").await;
        let port = self.start("api", "api-1").await;
        format!("http://127.0.0.1:{port}")
    }

    pub fn api(&self, instance: &str) -> String {
        format!("http://127.0.0.1:{}", self.roles[instance].port)
    }

    /// SIGKILL: a crash, nothing flushed.
    pub fn kill(&mut self, instance: &str) {
        if let Some(mut r) = self.roles.remove(instance) {
            let _ = r.child.kill();
            let _ = r.child.wait();
            self.roles.insert(format!("{instance}-killed"), r);
        }
    }

    /// SIGSTOP: the process freezes (a long GC-like pause, a throttled or
    /// descheduled pod) while its connections stay open.
    pub fn pause(&self, instance: &str) {
        signal(&self.roles[instance].child, "-STOP");
    }

    /// SIGCONT: a paused process goes on from where it was.
    pub fn resume(&self, instance: &str) {
        signal(&self.roles[instance].child, "-CONT");
    }

    /// SIGTERM and wait: a graceful stop.
    pub fn stop(&mut self, instance: &str) {
        if let Some(mut r) = self.roles.remove(instance) {
            terminate(&mut r.child);
        }
    }

    /// The `/metrics` text of a running instance.
    pub async fn metrics(&self, instance: &str) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.roles[instance].port);
        self.http
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn log_tail(&self, instance: &str, lines: usize) -> String {
        let Some(r) = self.roles.get(instance) else {
            return String::new();
        };
        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub async fn organizer_token(&self, api: &str) -> String {
        let r: Value = self
            .http
            .post(format!("{api}/api/auth/organizer"))
            .json(&json!({ "password": "organizer" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["token"].as_str().unwrap().to_owned()
    }

    pub async fn buyer_token(&self, api: &str) -> (String, String) {
        let r: Value = self
            .http
            .post(format!("{api}/api/auth/buyer"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            r["buyer_id"].as_str().unwrap().to_owned(),
            r["token"].as_str().unwrap().to_owned(),
        )
    }

    /// `GET /api/events/{event}/seats`: status code and body.
    pub async fn seat_map(&self, api: &str, event: &str) -> (u16, Value) {
        call(
            &self.http,
            reqwest::Method::GET,
            &format!("{api}/api/events/{event}/seats"),
            None,
            None,
            &[],
        )
        .await
    }

    /// Creates an on-sale event; returns its id.
    pub async fn create_event(
        &self,
        api: &str,
        sections: u8,
        rows: u16,
        seats: u16,
        hold_seconds: i64,
    ) -> String {
        self.create_event_in_parts(api, sections, rows, seats, hold_seconds, 1)
            .await
    }

    /// Creates an on-sale event decided in `parts` parts
    /// (docs/event-partitioning.md); returns its id.
    pub async fn create_event_in_parts(
        &self,
        api: &str,
        sections: u8,
        rows: u16,
        seats: u16,
        hold_seconds: i64,
        parts: u16,
    ) -> String {
        let token = self.organizer_token(api).await;
        self.create_event_as(api, &token, sections, rows, seats, hold_seconds, parts)
            .await
    }

    /// [`Self::create_event_in_parts`] as the organizer holding `token`.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_event_as(
        &self,
        api: &str,
        token: &str,
        sections: u8,
        rows: u16,
        seats: u16,
        hold_seconds: i64,
        parts: u16,
    ) -> String {
        let now = chrono::Utc::now();
        let sections: Vec<Value> = (0..sections)
            .map(|i| {
                let code = char::from(b'A' + i).to_string();
                json!({
                    "code": code, "name": format!("Section {code}"), "price_category": if i == 0 { "PREMIUM" } else { "STANDARD" },
                    "rows": (1..=rows).map(|r| json!({ "label": r.to_string(), "seats": seats })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let body = json!({
            "name": "Test night",
            "starts_at": now + chrono::Duration::days(30),
            "sale_opens_at": now - chrono::Duration::minutes(1),
            "sale_closes_at": now + chrono::Duration::days(29),
            "venue": { "name": "Test Hall", "sections": sections },
            "price_categories": [
                { "code": "PREMIUM", "name": "Premium", "price_cents": 12900, "currency": "EUR" },
                { "code": "STANDARD", "name": "Standard", "price_cents": 7900, "currency": "EUR" },
            ],
            "max_seats_per_buyer": 4,
            "hold_duration_seconds": hold_seconds,
            "parts": parts,
        });
        self.post_event(api, token, body).await
    }

    /// A one-section event of 2 rows of 10 seats, with the fields of
    /// `extra` set over the defaults (a `waiting_room`, a later
    /// `sale_opens_at`); returns its id.
    pub async fn create_event_with(&self, api: &str, token: &str, extra: Value) -> String {
        let now = chrono::Utc::now();
        let mut body = json!({
            "name": "Test night",
            "starts_at": now + chrono::Duration::days(30),
            "sale_opens_at": now - chrono::Duration::minutes(1),
            "sale_closes_at": now + chrono::Duration::days(29),
            "venue": { "name": "Test Hall", "sections": [{
                "code": "A", "name": "Section A", "price_category": "STANDARD",
                "rows": [{ "label": "1", "seats": 10 }, { "label": "2", "seats": 10 }],
            }]},
            "price_categories": [
                { "code": "STANDARD", "name": "Standard", "price_cents": 7900, "currency": "EUR" },
            ],
            "max_seats_per_buyer": 4,
            "hold_duration_seconds": 600,
        });
        for (k, v) in extra.as_object().expect("an object") {
            body[k] = v.clone();
        }
        self.post_event(api, token, body).await
    }

    async fn post_event(&self, api: &str, token: &str, body: Value) -> String {
        let res = self
            .http
            .post(format!("{api}/api/events"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let json: Value = res.json().await.unwrap();
        let id = json["id"].as_str().unwrap().to_owned();
        match status.as_u16() {
            201 => {}
            // Not decided within the API's deadline (a first takeover on a
            // busy machine): follow the poll URL, as a client does.
            202 => {
                let url = format!("{api}/api/events/{id}");
                wait_status(self, &url, None, 200, Duration::from_secs(30)).await;
            }
            _ => panic!("event creation: {status} {json}"),
        }
        id
    }

    /// Deletes this stack's Redis keys that match `pattern` (after its
    /// prefix), as a flushed or failed-over Redis would lose them; answers
    /// the keys deleted.
    pub async fn forget_redis_keys(&self, pattern: &str) -> Vec<String> {
        let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}{pattern}", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        keys
    }

    /// A `boxoffice` subcommand run to completion; its stdout.
    pub fn run_tool(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
            .args(args)
            .output()
            .expect("run boxoffice");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {}", child.id());
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in self.roles.keys() {
                eprintln!(
                    "---- last log lines of {name} ----\n{}",
                    self.log_tail(name, 25)
                );
            }
            eprintln!("(full logs under {})", self.dir.display());
        }
        for r in self.roles.values_mut() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        // A passing test leaves nothing behind; a failing one keeps its logs.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A JSON request helper: method, URL, token, optional body and headers.
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls `url` (as the holder of `token`, if any) until it answers `want`;
/// returns that body.
pub async fn wait_status(
    stack: &Stack,
    url: &str,
    token: Option<&str>,
    want: u16,
    within: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = call(&stack.http, reqwest::Method::GET, url, token, None, &[]).await;
        if status == want {
            return body;
        }
        assert!(
            started.elapsed() < within,
            "{url} still answers {status} after {within:?}, wanted {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Long-polls a booking until it exists (no longer pending).
pub async fn settled_booking(stack: &Stack, api: &str, token: &str, id: &str) -> Value {
    let url = format!("{api}/api/bookings/{id}?wait_ms=5000");
    wait_status(stack, &url, Some(token), 200, Duration::from_secs(90)).await
}

/// Follows a 202 to its decision; a refusal decided later reads as the 409
/// it would have been.
pub async fn decided(
    stack: &Stack,
    api: &str,
    token: &str,
    status: u16,
    body: Value,
) -> (u16, Value) {
    if status != 202 {
        return (status, body);
    }
    let booking = settled_booking(stack, api, token, body["id"].as_str().unwrap()).await;
    if booking["status"] == "rejected" {
        return (409, json!({ "code": booking["reject_reason"] }));
    }
    (200, booking)
}

/// `POST /api/events/{event}/bookings` with an Idempotency-Key.
pub async fn book(
    stack: &Stack,
    api: &str,
    event: &str,
    token: &str,
    key: &str,
    body: Value,
) -> (u16, Value) {
    call(
        &stack.http,
        reqwest::Method::POST,
        &format!("{api}/api/events/{event}/bookings"),
        Some(token),
        Some(body),
        &[("Idempotency-Key", key)],
    )
    .await
}

/// [`book`], then follows a 202 to the decision: (status, body).
pub async fn booked(
    stack: &Stack,
    api: &str,
    event: &str,
    token: &str,
    key: &str,
    body: Value,
) -> (u16, Value) {
    let (s, b) = book(stack, api, event, token, key, body).await;
    decided(stack, api, token, s, b).await
}

/// Holds `seats` for `token` with Idempotency-Key `key` and pays for them;
/// the confirmed booking.
pub async fn hold_and_pay(
    stack: &Stack,
    api: &str,
    event: &str,
    token: &str,
    key: &str,
    seats: Value,
) -> Value {
    let (s, held) = booked(stack, api, event, token, key, seats).await;
    assert!(s == 200 || s == 201, "{s} {held}");
    let confirm = format!(
        "{api}/api/bookings/{}/confirm",
        held["id"].as_str().unwrap()
    );
    let body = json!({ "payment_reference": format!("psp-{key}") });
    let (s, paid) = call(
        &stack.http,
        reqwest::Method::POST,
        &confirm,
        Some(token),
        Some(body),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{paid}");
    paid
}

/// A broker of the test's own (the same nisshi the stack runs), so a test
/// can crash and restart it without disturbing the others.
pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    /// The storage URL's options, e.g. `maintenance_interval=1s`.
    storage_options: String,
    child: Option<Child>,
}

impl Broker {
    pub fn binary() -> PathBuf {
        std::env::var_os("BOXOFFICE_NISSHI").map_or_else(
            || {
                PathBuf::from(std::env::var("HOME").expect("HOME"))
                    .join(".cache/boxoffice/tools/bin/nisshi")
            },
            PathBuf::from,
        )
    }

    pub async fn start(dir: PathBuf) -> Self {
        Self::start_with_storage(dir, "compaction=single").await
    }

    /// A broker that compacts (and applies retention) every `every`, as the
    /// stack's broker does at start and every ten minutes.
    pub async fn start_compacting(dir: PathBuf, every: &str) -> Self {
        Self::start_with_storage(
            dir,
            &format!("compaction=single&maintenance_interval={every}"),
        )
        .await
    }

    async fn start_with_storage(dir: PathBuf, options: &str) -> Self {
        std::fs::create_dir_all(&dir).expect("broker dir");
        let mut broker = Self {
            port: free_port(),
            dir,
            storage_options: options.to_owned(),
            child: None,
        };
        broker.restart().await;
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and data; waits until it listens.
    pub async fn restart(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .expect("broker log");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(Self::binary())
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args([
                "--storage-engine",
                &format!("sqlite://broker.db?{}", self.storage_options),
            ])
            .args(["--group-initial-rebalance-delay", "500ms"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start nisshi (scripts/stack.sh install builds it)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "broker not listening after 30s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: the broker crashes.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
