//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use boxoffice_platform::cache::Keys;
use boxoffice_platform::config::Topics;
use boxoffice_platform::kafka;
use prometheus::{HistogramVec, IntCounterVec, IntGauge};

use crate::admission::Admission;
use crate::auth::Signer;
use crate::limits::{Concurrency, Limiter, LocalBuckets, Rate};
use crate::listener::SeatFeeds;
use crate::waiters::Waiters;

pub struct AppState {
    pub instance: String,
    pub producer: Arc<kafka::RenewingProducer>,
    pub topics: Topics,
    pub redis: boxoffice_platform::cache::Shared,
    pub keys: Keys,
    pub waiters: Arc<Waiters>,
    pub feeds: Arc<SeatFeeds>,
    pub listener_connected: Arc<AtomicBool>,
    pub http: reqwest::Client,
    pub reservation_url: String,
    pub signer: Signer,
    pub organizer_password: String,
    pub accounts: crate::accounts::Accounts,
    /// Whether guest buyer tokens count (`BOXOFFICE_GUEST_BUYERS`).
    pub guests: bool,
    pub booking_deadline: Duration,
    pub long_poll_max: Duration,
    pub metrics: ApiMetrics,
    pub admission: Admission,
    /// Partition count of `booking-commands`, read from the broker the
    /// first time a command is sent: where each part of an event goes.
    pub command_partitions: tokio::sync::OnceCell<i32>,
    pub limits: Limits,
    pub waiting_rooms: crate::waiting_room::WaitingRooms,
    /// Events as new bookings read them (crate::event_cache).
    pub events: crate::event_cache::EventCache,
}

/// The front door's limits (docs/front-door.md).
pub struct Limits {
    pub limiter: Limiter,
    pub trusted_proxies: boxoffice_platform::client::TrustedProxies,
    pub address: Rate,
    pub buyer: Rate,
    pub event: Rate,
    pub new_buyers: Rate,
    pub sign_in: Rate,
    pub account_sign_in: Rate,
    pub waiting_room: Rate,
    pub streams: Arc<Concurrency>,
    pub long_polls: Arc<Concurrency>,
    pub reads: LocalBuckets,
}

/// The API's own instruments.
pub struct ApiMetrics {
    pub commands: IntCounterVec,
    pub deferred_in_flight: IntGauge,
    pub deferred_seconds: HistogramVec,
    pub admission_limit: IntGauge,
}

impl ApiMetrics {
    pub fn new(registry: &prometheus::Registry) -> anyhow::Result<Self> {
        let commands = IntCounterVec::new(
            prometheus::Opts::new(
                "api_commands_total",
                "Commands answered, by kind and result",
            ),
            &["kind", "result"],
        )?;
        let deferred_in_flight = IntGauge::new(
            "deferred_responses_in_flight",
            "Requests waiting for their outcome right now",
        )?;
        let deferred_seconds = HistogramVec::new(
            prometheus::HistogramOpts::new(
                "deferred_response_seconds",
                "From publishing a command to its answer, by result",
            )
            .buckets(boxoffice_platform::metrics::LATENCY_BUCKETS.to_vec()),
            &["result"],
        )?;
        registry.register(Box::new(commands.clone()))?;
        registry.register(Box::new(deferred_in_flight.clone()))?;
        registry.register(Box::new(deferred_seconds.clone()))?;
        let admission_limit = IntGauge::new(
            "admission_limit",
            "New booking requests this instance lets be in flight at once",
        )?;
        registry.register(Box::new(admission_limit.clone()))?;
        Ok(Self {
            commands,
            deferred_in_flight,
            deferred_seconds,
            admission_limit,
        })
    }
}

pub type Data = actix_web::web::Data<AppState>;
