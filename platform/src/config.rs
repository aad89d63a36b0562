//! Typed configuration from environment variables (12-factor), with local
//! defaults so that every role runs on a laptop without any setup.

use std::fmt;
use std::str::FromStr;

/// A value that must never reach a log line: `Debug` and `Display` print
/// `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Settings every role shares: where the broker is, and how this instance
/// is named.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonConfig {
    /// Name of this instance (the pod name in Kubernetes); labels metrics and
    /// logs. Defaults to the host name, or the role and process id.
    #[arg(long, env = "BOXOFFICE_INSTANCE")]
    pub instance: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_brokers: String,
    /// Prefix for every topic name, so that several systems (or test runs)
    /// share one broker.
    #[arg(long, env = "BOXOFFICE_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
    /// Longest time the broker holds a consumer's fetch when there is nothing
    /// new (ms): the extra delay an idle partition's first new message may
    /// see, against the broker's work for idle consumers (every hold is
    /// re-checked against storage; docs/performance.md).
    #[arg(long, env = "BOXOFFICE_KAFKA_FETCH_WAIT_MS", default_value_t = 100)]
    pub fetch_wait_ms: u64,
    /// How long a producer waits to fill a batch before sending it
    /// (`linger.ms`): fewer, larger produce requests and less client CPU,
    /// against up to this much latency per hop when traffic is light
    /// (5 decided 10% more bookings/s than 2 in the on-sale benchmark;
    /// docs/performance.md).
    #[arg(long, env = "BOXOFFICE_KAFKA_LINGER_MS", default_value_t = 5)]
    pub linger_ms: u64,
    /// Partitions of each topic when this instance creates them. Every topic
    /// has the same count, so partition N of each holds the same events.
    #[arg(long, env = "BOXOFFICE_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor of the topics this instance creates: 3 on a
    /// cluster; 1 only on a single local broker, whose disk then holds the
    /// only copy of every booking.
    #[arg(long, env = "BOXOFFICE_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: i32,
    /// `min.insync.replicas` of the topics this instance creates: with
    /// `acks=all`, a write is acknowledged only once this many replicas
    /// have it (2 with a replication factor of 3).
    #[arg(long, env = "BOXOFFICE_MIN_INSYNC_REPLICAS", default_value_t = 1)]
    pub min_insync_replicas: i32,
    /// Confluent Schema Registry URL. Set, every role registers the Avro
    /// schemas of the topics (subjects `<topic>-value`, compatibility
    /// BACKWARD) at start and frames messages as the registry's serializers
    /// do; unset, messages carry Avro's single-object encoding.
    #[arg(long, env = "BOXOFFICE_SCHEMA_REGISTRY_URL")]
    pub schema_registry_url: Option<String>,
}

/// Where PostgreSQL is: read only by the roles that use it (the
/// reservation-processor for bookings, the API for accounts and sessions),
/// so no other role is handed its credentials.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/boxoffice",
        hide_env_values = true
    )]
    pub database_url: Secret,
}

/// Where Redis is, and the prefix of every key: the API and the
/// reservation-processor.
#[derive(clap::Args, Debug, Clone)]
pub struct RedisConfig {
    /// Redis connection URL.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: Secret,
    /// Prefix of every Redis key and channel.
    #[arg(long, env = "BOXOFFICE_REDIS_PREFIX", default_value = "bx:")]
    pub redis_prefix: String,
}

impl CommonConfig {
    /// The instance name, falling back to the host name, then to role and pid.
    pub fn instance_name(&self, role: &str) -> String {
        self.instance
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| format!("{role}-{}", std::process::id()))
    }

    pub fn topics(&self) -> Topics {
        Topics::new(&self.topic_prefix)
    }

    /// The consumer group of a processor role (`seat-processor`, ...).
    pub fn group(&self, role: &str) -> String {
        format!("{}boxoffice-{role}", self.topic_prefix)
    }
}

/// The names of the topics, with the configured prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Commands for the seat-processor, keyed by event id.
    pub commands: String,
    /// Outcomes from the seat-processor, keyed by event id.
    pub events: String,
    /// The seat-processor's state, compacted.
    pub changelog: String,
    /// Messages no processor could handle, with the reason in headers.
    pub dead_letters: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Self {
            commands: format!("{prefix}booking-commands"),
            events: format!("{prefix}booking-events"),
            changelog: format!("{prefix}seat-changelog"),
            dead_letters: format!("{prefix}dead-letters"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s: Secret = "postgres://u:hunter2@db/x".parse().unwrap();
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "postgres://u:hunter2@db/x");
    }

    #[test]
    fn topics_carry_the_prefix() {
        let t = Topics::new("t1-");
        assert_eq!(t.commands, "t1-booking-commands");
        assert_eq!(t.changelog, "t1-seat-changelog");
    }
}
