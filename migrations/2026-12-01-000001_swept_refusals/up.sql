-- Refused bookings are deleted once no client retries them any more
-- (BOXOFFICE_REFUSAL_RETENTION_SECS), so a flood of refused attempts does
-- not grow the database without bound. The organizer's figures keep
-- counting them here: the sweep moves each deleted refusal into its count
-- in the same statement.
CREATE TABLE swept_refusals (
    event_id       uuid NOT NULL REFERENCES events (id),
    reject_reason  text NOT NULL,
    bookings       bigint NOT NULL CHECK (bookings > 0),
    PRIMARY KEY (event_id, reject_reason)
);

CREATE INDEX bookings_refused_by_age ON bookings (updated_at) WHERE status = 'rejected';
