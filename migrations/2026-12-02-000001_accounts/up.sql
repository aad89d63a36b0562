-- Accounts: buyers and organizers sign in with an email and a password
-- (docs/accounts.md). The API is the only role that reads or writes these.
CREATE TABLE accounts (
    id             uuid PRIMARY KEY,
    -- Trimmed and lowercased by the API, so one address is one account.
    email          text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) <= 254),
    -- argon2id, in the PHC string format (algorithm, parameters, salt, hash).
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('buyer', 'organizer')),
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per sign-in. A token names its session; the session decides
-- whether the token still counts (expired, revoked by signing out).
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- An event's organizer is an account now, named in the event's own
-- command. The reservation-processor records what the log says and must
-- never refuse it over a row it cannot see, so the old reference goes.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_organizer_id_fkey;
