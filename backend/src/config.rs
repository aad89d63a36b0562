//! Settings of the API role.

use boxoffice_platform::config::{CommonConfig, RedisConfig, Secret};

#[derive(clap::Args, Debug, Clone)]
pub struct ApiConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
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
        default_value = "local-development-secret",
        hide_env_values = true
    )]
    pub auth_secret: Secret,
    /// Password organizers sign in with.
    #[arg(
        long,
        env = "BOXOFFICE_ORGANIZER_PASSWORD",
        default_value = "organizer",
        hide_env_values = true
    )]
    pub organizer_password: Secret,
}
