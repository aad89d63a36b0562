-- Organizers create events; buyers book seats.
CREATE TABLE organizers (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE buyers (
    id          uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE venues (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    layout      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    id                   uuid PRIMARY KEY,
    venue_id             uuid NOT NULL REFERENCES venues (id),
    organizer_id         uuid REFERENCES organizers (id),
    name                 text NOT NULL,
    starts_at            timestamptz NOT NULL,
    sale_opens_at        timestamptz NOT NULL,
    sale_closes_at       timestamptz NOT NULL,
    sale_state           text NOT NULL CHECK (sale_state IN ('scheduled', 'open', 'closed')),
    max_seats_per_buyer  integer NOT NULL CHECK (max_seats_per_buyer > 0),
    hold_duration_ms     bigint NOT NULL CHECK (hold_duration_ms > 0),
    capacity             integer NOT NULL,
    spec                 jsonb NOT NULL,
    -- Offset of the last seat-processor outcome applied to this row.
    version              bigint NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (sale_closes_at > sale_opens_at)
);

CREATE TABLE price_categories (
    event_id     uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    code         text NOT NULL,
    name         text NOT NULL,
    price_cents  bigint NOT NULL CHECK (price_cents >= 0),
    currency     char(3) NOT NULL,
    PRIMARY KEY (event_id, code)
);

CREATE TABLE sections (
    event_id        uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    code            text NOT NULL,
    name            text NOT NULL,
    price_category  text NOT NULL,
    position        integer NOT NULL,
    PRIMARY KEY (event_id, code),
    FOREIGN KEY (event_id, price_category) REFERENCES price_categories (event_id, code)
);

CREATE TABLE seats (
    event_id   uuid NOT NULL,
    seat_id    text NOT NULL,
    section    text NOT NULL,
    row_label  text NOT NULL,
    number     integer NOT NULL CHECK (number > 0),
    -- Index in layout order, as the seat-processor numbers seats.
    position   integer NOT NULL,
    PRIMARY KEY (event_id, seat_id),
    FOREIGN KEY (event_id, section) REFERENCES sections (event_id, code) ON DELETE CASCADE
);

CREATE TABLE bookings (
    id                  uuid PRIMARY KEY,
    event_id            uuid NOT NULL REFERENCES events (id),
    buyer_id            uuid NOT NULL,
    status              text NOT NULL CHECK (status IN ('held', 'confirmed', 'cancelled', 'expired', 'rejected')),
    reject_reason       text,
    hold_expires_at     timestamptz,
    total_cents         bigint NOT NULL DEFAULT 0,
    fingerprint         text NOT NULL,
    payment_reference   text,
    -- Partition of booking-events this booking's event lives on; the
    -- reservation-processor owning that partition drives its expiry.
    kafka_partition     integer NOT NULL,
    -- Offset of the seat-processor command whose outcome this row reflects;
    -- older or duplicate outcomes never overwrite newer ones.
    version             bigint NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'rejected') = (reject_reason IS NOT NULL))
);

CREATE INDEX bookings_by_event ON bookings (event_id);
CREATE INDEX bookings_due_for_expiry ON bookings (kafka_partition, hold_expires_at) WHERE status = 'held';

CREATE TABLE booking_seats (
    booking_id  uuid NOT NULL REFERENCES bookings (id),
    event_id    uuid NOT NULL,
    seat_id     text NOT NULL,
    -- True while the booking holds or owns the seat.
    active      boolean NOT NULL,
    PRIMARY KEY (booking_id, seat_id),
    FOREIGN KEY (event_id, seat_id) REFERENCES seats (event_id, seat_id)
);

-- The database itself refuses a double sale: at most one held or sold
-- booking per seat of an event.
CREATE UNIQUE INDEX one_active_booking_per_seat ON booking_seats (event_id, seat_id) WHERE active;
