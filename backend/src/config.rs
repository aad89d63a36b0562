//! Settings of the API role.

use boxoffice_platform::client::TrustedProxies;
use boxoffice_platform::config::{CommonConfig, DatabaseConfig, RedisConfig, Secret};

use crate::limits::Rate;

/// The built-in secrets: for the local stack only (`BOXOFFICE_ENV=local`).
pub const LOCAL_AUTH_SECRET: &str = "local-development-secret";
pub const LOCAL_ORGANIZER_PASSWORD: &str = "organizer";

/// Where the API runs: only `local` accepts the built-in secrets.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Local,
    Production,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ApiConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// HTTP port of the API.
    #[arg(long, env = "BOXOFFICE_PORT", default_value_t = 8080)]
    pub port: u16,
    /// How long a booking request waits for its outcome before answering 202
    /// with a URL to poll (ms).
    #[arg(long, env = "BOXOFFICE_BOOKING_DEADLINE_MS", default_value_t = 3000)]
    pub booking_deadline_ms: u64,
    /// Most new booking requests in flight at once in this instance; more
    /// are answered `503 overloaded` at once. An admitted request's latency
    /// stays near this divided by the pipeline's decisions per second
    /// (docs/admission.md).
    #[arg(long, env = "BOXOFFICE_ADMISSION_MAX", default_value_t = 256)]
    pub admission_max: usize,
    /// Longest long-poll of `GET /api/bookings/{id}?wait_ms=` (ms).
    #[arg(long, env = "BOXOFFICE_LONG_POLL_MAX_MS", default_value_t = 30000)]
    pub long_poll_max_ms: u64,
    /// Base URL of the reservation-processor's interactive queries (a
    /// Kubernetes Service in a cluster).
    #[arg(
        long,
        env = "BOXOFFICE_RESERVATION_URL",
        default_value = "http://127.0.0.1:8180"
    )]
    pub reservation_url: String,
    /// Key that signs buyer and organizer tokens.
    #[arg(
        long,
        env = "BOXOFFICE_AUTH_SECRET",
        default_value = LOCAL_AUTH_SECRET,
        hide_env_values = true
    )]
    pub auth_secret: Secret,
    /// Password organizers sign in with.
    #[arg(
        long,
        env = "BOXOFFICE_ORGANIZER_PASSWORD",
        default_value = LOCAL_ORGANIZER_PASSWORD,
        hide_env_values = true
    )]
    pub organizer_password: Secret,
    /// `local` for the local stack, which may use the built-in secret and
    /// password; anywhere else the API refuses to start with them, or with
    /// an auth secret shorter than 32 bytes.
    #[arg(long, env = "BOXOFFICE_ENV", value_enum, default_value = "production")]
    pub env: Environment,
    /// Proxies whose `X-Forwarded-For` is believed, as comma-separated
    /// networks (`10.0.0.0/8,127.0.0.1/32`): the ingress and the web app's
    /// server. Any other peer is itself the client (docs/front-door.md).
    #[arg(long, env = "BOXOFFICE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,
    /// Booking calls (new, confirm, cancel) per client address, counted
    /// over every API instance: `N/s:BURST`, `N/min:BURST`, or `off`.
    #[arg(long, env = "BOXOFFICE_LIMIT_ADDRESS", default_value = "20/s:100")]
    pub limit_address: Rate,
    /// Booking calls per buyer, over every API instance.
    #[arg(long, env = "BOXOFFICE_LIMIT_BUYER", default_value = "2/s:10")]
    pub limit_buyer: Rate,
    /// New booking requests per event, over every API instance and client.
    #[arg(long, env = "BOXOFFICE_LIMIT_EVENT", default_value = "5000/s:10000")]
    pub limit_event: Rate,
    /// New buyer identities (`POST /api/auth/buyer`) per client address.
    #[arg(long, env = "BOXOFFICE_LIMIT_NEW_BUYERS", default_value = "1/s:20")]
    pub limit_new_buyers: Rate,
    /// Sign-in attempts per client address; refused while Redis
    /// cannot count them.
    #[arg(long, env = "BOXOFFICE_LIMIT_SIGN_IN", default_value = "5/min:10")]
    pub limit_sign_in: Rate,
    /// Sign-in attempts per account, from any address; refused while Redis
    /// cannot count them.
    #[arg(
        long,
        env = "BOXOFFICE_LIMIT_ACCOUNT_SIGN_IN",
        default_value = "20/h:10"
    )]
    pub limit_account_sign_in: Rate,
    /// Waiting-room calls (joining, asking where one stands) per buyer,
    /// over every API instance. A client that follows `Retry-After` asks
    /// every 2-30 s; one that polls in a loop is answered 429.
    #[arg(long, env = "BOXOFFICE_LIMIT_WAITING_ROOM", default_value = "1/s:10")]
    pub limit_waiting_room: Rate,
    /// Whether buyers may book without an account, with a guest token
    /// (`POST /api/auth/buyer`). Off, only signed-in accounts book, and the
    /// per-buyer seat limit holds per account.
    #[arg(
        long,
        env = "BOXOFFICE_GUEST_BUYERS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub guest_buyers: bool,
    /// How long a sign-in (and a guest or house-organizer token) lasts, in
    /// seconds.
    #[arg(long, env = "BOXOFFICE_SESSION_SECONDS", default_value_t = 43_200)]
    pub session_seconds: u64,
    /// Passwords this instance hashes at once (argon2id: 19 MiB and most of
    /// a core each, for a moment); sign-ins beyond wait up to 3 s, then get
    /// `503`.
    #[arg(long, env = "BOXOFFICE_PASSWORD_HASHERS", default_value_t = 2)]
    pub password_hashers: usize,
    /// PostgreSQL connections for accounts and sessions.
    #[arg(long, env = "BOXOFFICE_ACCOUNTS_DB_POOL", default_value_t = 4)]
    pub accounts_db_pool: usize,
    /// Live seat-map streams one client may keep open on this instance.
    #[arg(long, env = "BOXOFFICE_STREAMS_PER_CLIENT", default_value_t = 20)]
    pub streams_per_client: usize,
    /// Live seat-map streams this instance keeps open in all.
    #[arg(long, env = "BOXOFFICE_STREAMS_MAX", default_value_t = 5000)]
    pub streams_max: usize,
    /// Reads (events, seat maps, bookings, an organizer's figures, opening
    /// a live seat map) per client address, counted by each instance on its
    /// own, so reads stay off Redis: behind N instances a client may read
    /// up to N times this. `off` counts nothing.
    #[arg(long, env = "BOXOFFICE_LIMIT_READS", default_value = "50/s:200")]
    pub limit_reads: Rate,
    /// Long polls for a booking (`GET /api/bookings/{id}?wait_ms=`) one
    /// buyer may have waiting on this instance at once; more are answered
    /// `429 too_many_waits`.
    #[arg(long, env = "BOXOFFICE_LONG_POLLS_PER_BUYER", default_value_t = 8)]
    pub long_polls_per_buyer: usize,
    /// Long polls this instance keeps waiting in all; more are answered
    /// `503`.
    #[arg(long, env = "BOXOFFICE_LONG_POLLS_MAX", default_value_t = 20_000)]
    pub long_polls_max: usize,
}

impl ApiConfig {
    /// Refuses what must never run outside the local stack: a built-in
    /// secret or password, or an auth secret short enough to guess.
    pub fn check_secrets(&self) -> anyhow::Result<()> {
        if self.env == Environment::Local {
            return Ok(());
        }
        let secret = self.auth_secret.expose();
        if secret == LOCAL_AUTH_SECRET {
            anyhow::bail!(
                "BOXOFFICE_AUTH_SECRET is the built-in local one: set a random secret of 32 \
                 bytes or more (or BOXOFFICE_ENV=local on a laptop)"
            );
        }
        if secret.len() < 32 {
            anyhow::bail!(
                "BOXOFFICE_AUTH_SECRET has {} bytes: it must have 32 or more",
                secret.len()
            );
        }
        if self.organizer_password.expose() == LOCAL_ORGANIZER_PASSWORD {
            anyhow::bail!(
                "BOXOFFICE_ORGANIZER_PASSWORD is the built-in local one: set a password of \
                 your own (or BOXOFFICE_ENV=local on a laptop)"
            );
        }
        Ok(())
    }
}
