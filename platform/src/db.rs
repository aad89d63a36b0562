//! PostgreSQL through diesel-async: the connection pool, embedded migrations
//! (run at start), and the table definitions.

use diesel::prelude::*;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub type PgPool = Pool<AsyncPgConnection>;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// A pool of at most `max_size` connections (two at least: migrating takes
/// two). Every wait is bounded, so an unreachable database turns into an
/// error (and a 503) instead of a hang.
pub fn pool(url: &str, max_size: usize) -> anyhow::Result<PgPool> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    let limit = Some(std::time::Duration::from_secs(5));
    Ok(Pool::builder(manager)
        .max_size(max_size.max(2))
        .wait_timeout(limit)
        .create_timeout(limit)
        .recycle_timeout(limit)
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

/// Key of the advisory lock that migrations run under.
const MIGRATION_LOCK: i64 = 0x626f_786f_6666_6963; // "boxoffic"

/// Applies every pending migration. The API and the reservation-processor
/// both do at start, so each holds an advisory lock meanwhile: instances
/// starting together migrate one after the other, and the later ones find
/// nothing left to do.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut lock = pool.get().await?;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(&mut lock)
        .await?;
    let conn = pool.get().await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("migrations failed: {e}"));
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(&mut lock)
        .await?;
    for m in applied? {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(())
}

/// Creates the database named in `url` if it does not exist, connecting to
/// the server's `postgres` database to do so.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = split_database_url(url)?;
    let mut conn = AsyncPgConnection::establish(&format!("{server}/postgres")).await?;
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result::<Found>(&mut conn)
            .await?
            .found;
    if !exists {
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await?;
        tracing::info!(database = name, "created database");
    }
    Ok(())
}

/// Splits `postgres://host/db?opts` into the server part and the database name.
fn split_database_url(url: &str) -> anyhow::Result<(String, String)> {
    let without_query = url.split('?').next().unwrap_or(url);
    let (server, name) = without_query
        .rsplit_once('/')
        .filter(|(s, n)| s.contains("://") && !s.ends_with('/') && !n.is_empty())
        .ok_or_else(|| anyhow::anyhow!("database URL must end in /<database name>"))?;
    anyhow::ensure!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "database name {name:?} must be letters, digits, '_' or '-'"
    );
    Ok((server.to_owned(), name.to_owned()))
}

/// Readiness probe: PostgreSQL answers `SELECT 1`.
pub async fn probe(pool: PgPool) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| format!("postgres: {e}"))?;
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("postgres: {e}"))
}

pub mod schema {
    diesel::table! {
        events (id) {
            id -> Uuid,
            venue_id -> Uuid,
            organizer_id -> Nullable<Uuid>,
            name -> Text,
            starts_at -> Timestamptz,
            sale_opens_at -> Timestamptz,
            sale_closes_at -> Timestamptz,
            sale_state -> Text,
            max_seats_per_buyer -> Integer,
            hold_duration_ms -> BigInt,
            capacity -> Integer,
            spec -> Jsonb,
            version -> BigInt,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        bookings (id) {
            id -> Uuid,
            event_id -> Uuid,
            buyer_id -> Uuid,
            status -> Text,
            reject_reason -> Nullable<Text>,
            hold_expires_at -> Nullable<Timestamptz>,
            total_cents -> BigInt,
            fingerprint -> Text,
            payment_reference -> Nullable<Text>,
            kafka_partition -> Integer,
            version -> BigInt,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        booking_seats (booking_id, seat_id) {
            booking_id -> Uuid,
            event_id -> Uuid,
            seat_id -> Text,
            active -> Bool,
        }
    }

    diesel::joinable!(booking_seats -> bookings (booking_id));
    diesel::allow_tables_to_appear_in_same_query!(events, bookings, booking_seats);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_split_into_server_and_name() {
        assert_eq!(
            split_database_url("postgres://postgres@127.0.0.1:5432/boxoffice_t1?sslmode=disable")
                .unwrap(),
            (
                "postgres://postgres@127.0.0.1:5432".to_owned(),
                "boxoffice_t1".to_owned()
            )
        );
        assert!(split_database_url("postgres://host/").is_err());
        assert!(split_database_url("postgres://host/x;drop").is_err());
    }
}
