//! Accounts and their sessions (docs/accounts.md): buyers and organizers
//! sign up with an email and a password, hashed with argon2id; each sign-in
//! opens a session in PostgreSQL that a token names and sign-out revokes.
//! Whether a session still counts is cached in Redis, so a booking call
//! costs one Redis read, not a database query; a flushed cache only means
//! reading PostgreSQL again.
//!
//! The checks on what a client sends are pure and tested here; the rest is
//! PostgreSQL, Redis and a bounded pool of password hashers.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use boxoffice_platform::cache::Keys;
use boxoffice_platform::db::PgPool;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Nullable, Text, Timestamptz};
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;
use redis::AsyncCommands;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::auth::Role;
use crate::error::ApiError;

/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;
/// Password length bounds, in characters: NIST SP 800-63B's minimum, and a
/// maximum that keeps what a client makes the hasher read small.
pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 128;
/// How long a cached "live" answer stands before PostgreSQL is asked again:
/// the longest a revocation can take to reach every API instance if the
/// cache write of a sign-out failed.
const LIVE_CACHE: Duration = Duration::from_secs(60);
/// Longest wait for a free password hasher before the call is refused.
const HASHER_WAIT: Duration = Duration::from_secs(3);

/// Why what a client sent cannot make an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the email address is not valid: {0}")]
    Email(&'static str),
    #[error("the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")]
    PasswordLength,
    #[error("the password must not be the email address")]
    PasswordIsEmail,
}

/// An email address as stored: trimmed and lowercased, so one mailbox is
/// one account whatever case it is typed in.
pub fn normalize_email(raw: &str) -> Result<String, Invalid> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() || email.len() > MAX_EMAIL {
        return Err(Invalid::Email("it must have 3 to 254 characters"));
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ','))
    {
        return Err(Invalid::Email(
            "it contains spaces or characters mail addresses do not",
        ));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(Invalid::Email("it has no @"));
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return Err(Invalid::Email(
            "the part before the @ must have 1 to 64 characters",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-'))
    {
        return Err(Invalid::Email(
            "the part after the @ must be a domain name such as example.com",
        ));
    }
    Ok(email)
}

/// Whether a password may be set for `email` (already normalised).
pub fn check_password(password: &str, email: &str) -> Result<(), Invalid> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(Invalid::PasswordLength);
    }
    if password.trim().to_lowercase() == email {
        return Err(Invalid::PasswordIsEmail);
    }
    Ok(())
}

/// An account as the API hands it out.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

/// A session just opened.
pub struct Opened {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Whether a session's tokens still count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Live,
    /// Signed out, or not known at all.
    Revoked,
}

/// Accounts in PostgreSQL, sessions cached in Redis.
pub struct Accounts {
    pool: PgPool,
    keys: Keys,
    hashers: Arc<Semaphore>,
    session_ttl: Duration,
    /// What an unknown address's sign-in is checked against, so that it
    /// takes as long as a known one's and does not tell which addresses
    /// have accounts.
    decoy: String,
}

#[derive(QueryableByName)]
struct AccountRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    password_hash: String,
    #[diesel(sql_type = Text)]
    role: String,
}

#[derive(QueryableByName)]
struct SessionRow {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    revoked_at: Option<DateTime<Utc>>,
}

impl Accounts {
    /// `hashers`: how many passwords this instance hashes at once (each
    /// argon2id hash takes 19 MiB and most of a core for a moment).
    pub fn new(
        pool: PgPool,
        keys: Keys,
        hashers: usize,
        session_ttl: Duration,
    ) -> anyhow::Result<Self> {
        let decoy = hash_password(&Uuid::new_v4().to_string())?;
        Ok(Self {
            pool,
            keys,
            hashers: Arc::new(Semaphore::new(hashers.max(1))),
            session_ttl,
            decoy,
        })
    }

    /// When a token issued now stops counting, in whole seconds (as the
    /// token carries it): sessions, guests' and the house organizer's.
    pub fn expires_at(&self) -> DateTime<Utc> {
        let ttl = chrono::Duration::from_std(self.session_ttl).unwrap_or(chrono::Duration::MAX);
        let at = Utc::now()
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Runs `f` on a blocking thread once a hasher is free.
    async fn with_hasher<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(HASHER_WAIT, self.hashers.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::Unavailable("too many sign-ins at this moment".to_owned()))?
            .expect("the semaphore is never closed");
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| ApiError::unavailable("password hashing failed", e))?;
        Ok(out)
    }

    /// Creates an account; `email` and `password` must have passed
    /// [`normalize_email`] and [`check_password`].
    pub async fn sign_up(
        &self,
        email: String,
        password: String,
        role: Role,
    ) -> Result<Account, ApiError> {
        let hash = self
            .with_hasher(move || hash_password(&password))
            .await?
            .map_err(|e| ApiError::unavailable("password hashing failed", e))?;
        let id = Uuid::now_v7();
        let mut conn = self.conn().await?;
        let inserted = sql_query(
            "INSERT INTO accounts (id, email, password_hash, role) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<Text, _>(&email)
        .bind::<Text, _>(&hash)
        .bind::<Text, _>(role.name())
        .execute(&mut conn)
        .await
        .map_err(|e| ApiError::unavailable("could not create the account", e))?;
        if inserted == 0 {
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                "email_taken",
                "an account with this email address exists: sign in instead",
            ));
        }
        tracing::info!(account = %id, role = role.name(), "account created");
        Ok(Account { id, email, role })
    }

    /// The account whose password this is. An unknown address and a wrong
    /// password get the same answer, after the same work.
    pub async fn sign_in(&self, email: &str, password: String) -> Result<Account, ApiError> {
        let mut conn = self.conn().await?;
        let found =
            sql_query("SELECT id, email, password_hash, role FROM accounts WHERE email = $1")
                .bind::<Text, _>(email)
                .get_results::<AccountRow>(&mut conn)
                .await
                .map_err(|e| ApiError::unavailable("could not read the account", e))?
                .into_iter()
                .next();
        drop(conn);
        let hash = found
            .as_ref()
            .map_or_else(|| self.decoy.clone(), |a| a.password_hash.clone());
        let matches = self
            .with_hasher(move || verify_password(&password, &hash))
            .await?;
        match found {
            Some(row) if matches => Ok(Account {
                id: row.id,
                email: row.email,
                // The table's CHECK allows only the two roles.
                role: Role::parse(&row.role).unwrap_or(Role::Buyer),
            }),
            _ => Err(wrong_credentials()),
        }
    }

    /// Opens a session for `account`, lasting the configured time.
    pub async fn open_session(&self, account: &Account) -> Result<Opened, ApiError> {
        let id = Uuid::now_v7();
        let expires_at = self.expires_at();
        let mut conn = self.conn().await?;
        sql_query("INSERT INTO sessions (id, account_id, expires_at) VALUES ($1, $2, $3)")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .bind::<diesel::sql_types::Uuid, _>(account.id)
            .bind::<Timestamptz, _>(expires_at)
            .execute(&mut conn)
            .await
            .map_err(|e| ApiError::unavailable("could not open a session", e))?;
        Ok(Opened { id, expires_at })
    }

    /// Signs a session out: PostgreSQL first (the truth), then the cache,
    /// so every instance refuses its tokens at once. Should the cache write
    /// fail, a cached "live" lasts at most [`LIVE_CACHE`].
    pub async fn revoke(
        &self,
        redis: &boxoffice_platform::cache::Shared,
        session: Uuid,
        expires_at_s: i64,
    ) -> Result<(), ApiError> {
        let mut conn = self.conn().await?;
        sql_query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind::<diesel::sql_types::Uuid, _>(session)
            .execute(&mut conn)
            .await
            .map_err(|e| ApiError::unavailable("could not sign out", e))?;
        drop(conn);
        let ttl = remaining(expires_at_s).max(1);
        let state = SessionState::Revoked;
        if let Err(e) = cache_state(redis, &self.keys, session, state, ttl, Write::Always).await {
            tracing::warn!(error = %e, %session, "signed out, but the session cache was not updated");
        }
        tracing::info!(%session, "signed out");
        Ok(())
    }

    /// Whether `session` still counts: from the cache, else PostgreSQL
    /// (then cached). Refused with `503` only when neither can answer.
    pub async fn session_state(
        &self,
        redis: &boxoffice_platform::cache::Shared,
        session: Uuid,
        expires_at_s: i64,
    ) -> Result<SessionState, ApiError> {
        let key = self.keys.session(session);
        let cached: Option<String> = redis.conn().get(&key).await.ok().flatten();
        match cached.as_deref() {
            Some("live") => return Ok(SessionState::Live),
            Some("revoked") => return Ok(SessionState::Revoked),
            _ => {}
        }
        let mut conn = self.conn().await?;
        let row = sql_query("SELECT revoked_at FROM sessions WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(session)
            .get_results::<SessionRow>(&mut conn)
            .await
            .map_err(|e| ApiError::unavailable("could not check the session", e))?
            .into_iter()
            .next();
        drop(conn);
        let state = match row {
            Some(SessionRow { revoked_at: None }) => SessionState::Live,
            _ => SessionState::Revoked,
        };
        let left = remaining(expires_at_s).max(1);
        let ttl = match state {
            SessionState::Live => left.min(LIVE_CACHE.as_secs()),
            SessionState::Revoked => left,
        };
        // Only where nothing is cached: a sign-out that committed after the
        // read above has written `revoked`, which this must not overwrite.
        if let Err(e) = cache_state(redis, &self.keys, session, state, ttl, Write::IfAbsent).await {
            tracing::debug!(error = %e, "session state not cached");
        }
        Ok(state)
    }

    /// Deletes sessions that ended over a day ago; returns how many.
    pub async fn sweep(&self) -> Result<usize, ApiError> {
        let mut conn = self.conn().await?;
        sql_query("DELETE FROM sessions WHERE expires_at < now() - interval '1 day'")
            .execute(&mut conn)
            .await
            .map_err(|e| ApiError::unavailable("could not sweep sessions", e))
    }

    async fn conn(
        &self,
    ) -> Result<
        diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>,
        ApiError,
    > {
        self.pool
            .get()
            .await
            .map_err(|e| ApiError::unavailable("the account database is unavailable", e))
    }
}

/// The answer to a failed sign-in, whatever failed: the address, the
/// password, or a password too long to be anyone's.
pub fn wrong_credentials() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::UNAUTHORIZED,
        "wrong_credentials",
        "the email address or the password is wrong",
    )
}

/// Seconds left until `expires_at_s`, none if past.
fn remaining(expires_at_s: i64) -> u64 {
    u64::try_from(expires_at_s - Utc::now().timestamp()).unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Always,
    IfAbsent,
}

async fn cache_state(
    redis: &boxoffice_platform::cache::Shared,
    keys: &Keys,
    session: Uuid,
    state: SessionState,
    ttl_s: u64,
    write: Write,
) -> anyhow::Result<()> {
    let value = match state {
        SessionState::Live => "live",
        SessionState::Revoked => "revoked",
    };
    let mut c = redis.conn();
    let mut cmd = redis::cmd("SET");
    cmd.arg(keys.session(session))
        .arg(value)
        .arg("EX")
        .arg(ttl_s);
    if write == Write::IfAbsent {
        cmd.arg("NX");
    }
    let _: Option<String> = cmd.query_async(&mut c).await?;
    Ok(())
}

/// argon2id with the OWASP-recommended parameters (19 MiB, 2 passes), as
/// a PHC string that carries its own parameters and salt.
fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Ana.Lima@Example.COM ").unwrap(),
            "ana.lima@example.com"
        );
        assert_eq!(normalize_email("a@b.co").unwrap(), "a@b.co");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@.com",
            "a@b..com",
            "a b@example.com",
            "a@-x.com",
            "<a@b.com>",
            "a\u{0}@b.com",
            &format!("{}@example.com", "x".repeat(65)),
            &format!("a@{}.com", "x".repeat(260)),
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn passwords_are_long_enough_and_not_the_email() {
        assert_eq!(
            check_password("short", "a@b.co"),
            Err(Invalid::PasswordLength)
        );
        assert_eq!(
            check_password(&"x".repeat(129), "a@b.co"),
            Err(Invalid::PasswordLength)
        );
        assert_eq!(
            check_password("Ana@Example.com", "ana@example.com"),
            Err(Invalid::PasswordIsEmail)
        );
        assert!(check_password("correct horse battery", "a@b.co").is_ok());
        // Characters, not bytes: ten accented letters are ten.
        assert!(check_password("éééééééééé", "a@b.co").is_ok());
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent_and_never_panics(raw in ".{0,300}") {
            if let Ok(email) = normalize_email(&raw) {
                prop_assert_eq!(normalize_email(&email), Ok(email.clone()));
                prop_assert!(email.len() <= MAX_EMAIL);
                prop_assert_eq!(email.matches('@').count(), 1);
            }
        }

        #[test]
        fn case_never_makes_two_accounts(local in "[a-zA-Z0-9.]{1,20}", domain in "[a-zA-Z]{1,10}\\.[a-zA-Z]{2,5}") {
            let raw = format!("{local}@{domain}");
            prop_assert_eq!(
                normalize_email(&raw.to_uppercase()),
                normalize_email(&raw.to_lowercase())
            );
        }
    }
}
