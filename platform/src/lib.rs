//! Plumbing shared by every boxoffice role, written once: configuration,
//! telemetry, metrics, health endpoints, graceful shutdown, and the Kafka,
//! PostgreSQL and Redis clients with the wire format of every message.

pub mod cache;
pub mod client;
pub mod config;
pub mod db;
pub mod health;
pub mod kafka;
pub mod messages;
pub mod metrics;
pub mod otlp_metrics;
pub mod registry;
pub mod shutdown;
pub mod telemetry;
pub mod trace;
pub mod views;

/// Milliseconds since the Unix epoch, the time unit of every command.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
