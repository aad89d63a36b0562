//! What the reservation-processor writes to PostgreSQL: events with their
//! layout, and bookings with their seats. Every write is idempotent and
//! ordered by `version` (the seat-processor command offset), so duplicates and
//! replays never move a row backwards.

use std::collections::{HashMap, HashSet};

use boxoffice_domain::{Booking, EventId, EventSpec, SaleState};
use boxoffice_platform::views::{BookingTally, BookingView, EventView, sale_name};
use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Inserts an event, its venue layout, price categories, sections and seats.
pub async fn insert_event(
    conn: &mut AsyncPgConnection,
    event_id: EventId,
    spec: &EventSpec,
    sale: SaleState,
    version: i64,
) -> diesel::QueryResult<bool> {
    let id = event_id.0;
    let layout = serde_json::to_value(&spec.venue).expect("layouts serialise");
    let spec_json = serde_json::to_value(spec).expect("specs serialise");
    sql_query(
        "INSERT INTO venues (id, name, layout) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Text, _>(&spec.venue.name)
    .bind::<Jsonb, _>(&layout)
    .execute(conn)
    .await?;
    let inserted = sql_query(
        "INSERT INTO events (id, venue_id, name, starts_at, sale_opens_at, sale_closes_at, sale_state, \
         max_seats_per_buyer, hold_duration_ms, capacity, spec, version, organizer_id) \
         VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Text, _>(&spec.name)
    .bind::<Timestamptz, _>(time(spec.starts_at_ms))
    .bind::<Timestamptz, _>(time(spec.sale_opens_at_ms))
    .bind::<Timestamptz, _>(time(spec.sale_closes_at_ms))
    .bind::<Text, _>(sale_name(sale))
    .bind::<Integer, _>(i32::from(spec.max_seats_per_buyer))
    .bind::<BigInt, _>(spec.hold_duration_ms)
    .bind::<Integer, _>(i32::try_from(spec.venue.capacity()).unwrap_or(i32::MAX))
    .bind::<Jsonb, _>(&spec_json)
    .bind::<BigInt, _>(version)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(spec.organizer_id)
    .execute(conn)
    .await?;
    if inserted == 0 {
        return Ok(false);
    }
    let c = &spec.price_categories;
    sql_query(
        "INSERT INTO price_categories (event_id, code, name, price_cents, currency) \
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::text[]) ON CONFLICT DO NOTHING",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Array<Text>, _>(c.iter().map(|c| c.code.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(c.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(c.iter().map(|c| c.price_cents).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(c.iter().map(|c| c.currency.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    let s = &spec.venue.sections;
    sql_query(
        "INSERT INTO sections (event_id, code, name, price_category, position) \
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int[]) ON CONFLICT DO NOTHING",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Array<Text>, _>(s.iter().map(|s| s.code.to_string()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(s.iter().map(|s| s.name.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(s.iter().map(|s| s.price_category.clone()).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>((0..s.len() as i32).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    let (mut seat_ids, mut sections, mut rows, mut numbers, mut positions) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut position = 0;
    for section in s {
        for row in &section.rows {
            for n in 1..=row.seats {
                seat_ids.push(format!("{}-{}-{n}", section.code, row.label));
                sections.push(section.code.to_string());
                rows.push(row.label.to_string());
                numbers.push(i32::from(n));
                positions.push(position);
                position += 1;
            }
        }
    }
    sql_query(
        "INSERT INTO seats (event_id, seat_id, section, row_label, number, position) \
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int[], $6::int[]) ON CONFLICT DO NOTHING",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Array<Text>, _>(seat_ids)
    .bind::<Array<Text>, _>(sections)
    .bind::<Array<Text>, _>(rows)
    .bind::<Array<Integer>, _>(numbers)
    .bind::<Array<Integer>, _>(positions)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Updates an event's sale state unless a newer outcome already did.
pub async fn set_sale(
    conn: &mut AsyncPgConnection,
    event_id: EventId,
    sale: SaleState,
    version: i64,
) -> diesel::QueryResult<bool> {
    let n = sql_query(
        "UPDATE events SET sale_state = $2, version = $3 WHERE id = $1 AND version <= $3",
    )
    .bind::<diesel::sql_types::Uuid, _>(event_id.0)
    .bind::<Text, _>(sale_name(sale))
    .bind::<BigInt, _>(version)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// One booking outcome to record: the booking as it now stands, its
/// partition, and its version (the command offset).
pub struct BookingWrite<'a> {
    pub booking: &'a Booking,
    pub partition: i32,
    pub version: i64,
}

/// Upserts a batch of bookings and their seats in three statements, each
/// row unless a newer outcome already wrote it. Returns, per write, the view
/// the cache must follow, if any: that of the last outcome of each booking
/// in the batch (the ones before it changed nothing that stands), if it was
/// written.
pub async fn upsert_bookings(
    conn: &mut AsyncPgConnection,
    writes: &[BookingWrite<'_>],
) -> diesel::QueryResult<Vec<Option<BookingView>>> {
    let mut last: HashMap<Uuid, usize> = HashMap::with_capacity(writes.len());
    for (i, w) in writes.iter().enumerate() {
        last.insert(w.booking.id.0, i);
    }
    let standing: Vec<(usize, &BookingWrite<'_>, BookingView)> = writes
        .iter()
        .enumerate()
        .filter(|(i, w)| last[&w.booking.id.0] == *i)
        .map(|(i, w)| (i, w, BookingView::new(w.booking, w.version)))
        .collect();
    if standing.is_empty() {
        return Ok(vec![]);
    }
    let written: Vec<IdRow> = sql_query(
        "INSERT INTO bookings (id, event_id, buyer_id, status, reject_reason, hold_expires_at, total_cents, \
         fingerprint, payment_reference, kafka_partition, version, updated_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[], \
         $7::bigint[], $8::text[], $9::text[], $10::int[], $11::bigint[], $12::timestamptz[]) \
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, reject_reason = EXCLUDED.reject_reason, \
         hold_expires_at = EXCLUDED.hold_expires_at, total_cents = EXCLUDED.total_cents, \
         payment_reference = EXCLUDED.payment_reference, kafka_partition = EXCLUDED.kafka_partition, \
         version = EXCLUDED.version, updated_at = EXCLUDED.updated_at \
         WHERE bookings.version <= EXCLUDED.version \
         RETURNING id",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(standing.iter().map(|(_, _, v)| v.id).collect::<Vec<_>>())
    .bind::<Array<diesel::sql_types::Uuid>, _>(standing.iter().map(|(_, _, v)| v.event_id).collect::<Vec<_>>())
    .bind::<Array<diesel::sql_types::Uuid>, _>(standing.iter().map(|(_, _, v)| v.buyer_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(standing.iter().map(|(_, _, v)| v.status.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        standing.iter().map(|(_, _, v)| v.reject_reason.as_deref()).collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Timestamptz>>, _>(
        standing.iter().map(|(_, _, v)| v.hold_expires_at).collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(standing.iter().map(|(_, w, _)| w.booking.total_cents).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        standing.iter().map(|(_, w, _)| w.booking.fingerprint.as_str()).collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        standing.iter().map(|(_, w, _)| w.booking.payment_reference.as_deref()).collect::<Vec<_>>(),
    )
    .bind::<Array<Integer>, _>(standing.iter().map(|(_, w, _)| w.partition).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(standing.iter().map(|(_, w, _)| w.version).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(standing.iter().map(|(_, _, v)| v.updated_at).collect::<Vec<_>>())
    .load(conn)
    .await?;
    let written: HashSet<Uuid> = written.into_iter().map(|r| r.id).collect();

    // Seats are released before they are taken, so a seat handed from one
    // booking to another within the batch never looks sold twice. A released
    // booking keeps its seats as inactive rows (what it held).
    for active in [false, true] {
        let (mut holders, mut events, mut seats) = (Vec::new(), Vec::new(), Vec::new());
        for (_, w, view) in &standing {
            if w.booking.status.is_active() != active || !written.contains(&view.id) {
                continue;
            }
            for seat in &view.seats {
                holders.push(view.id);
                events.push(view.event_id);
                seats.push(seat.as_str());
            }
        }
        if holders.is_empty() {
            continue;
        }
        sql_query(
            "INSERT INTO booking_seats (booking_id, event_id, seat_id, active) \
             SELECT b, e, s, $4 FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS t (b, e, s) \
             ON CONFLICT (booking_id, seat_id) DO UPDATE SET active = EXCLUDED.active",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(holders)
        .bind::<Array<diesel::sql_types::Uuid>, _>(events)
        .bind::<Array<Text>, _>(seats)
        .bind::<diesel::sql_types::Bool, _>(active)
        .execute(conn)
        .await?;
    }
    let mut follow: Vec<Option<BookingView>> = vec![None; writes.len()];
    for (i, _, view) in standing {
        if written.contains(&view.id) {
            follow[i] = Some(view);
        }
    }
    Ok(follow)
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Jsonb)]
    spec: serde_json::Value,
    #[diesel(sql_type = Text)]
    sale_state: String,
    #[diesel(sql_type = BigInt)]
    created_ms: i64,
}

fn sale_from_name(s: &str) -> SaleState {
    match s {
        "open" => SaleState::Open,
        "closed" => SaleState::Closed,
        _ => SaleState::Scheduled,
    }
}

/// An event as stored, with its creation time (ms).
pub async fn load_event(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    now_ms: i64,
) -> diesel::QueryResult<Option<(EventView, i64)>> {
    let rows: Vec<EventRow> = sql_query(
        "SELECT id, spec, sale_state, (extract(epoch FROM created_at) * 1000)::bigint AS created_ms FROM events WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(event_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().and_then(|r| event_view(r, now_ms)))
}

/// Every event, newest first.
pub async fn load_events(
    conn: &mut AsyncPgConnection,
    now_ms: i64,
) -> diesel::QueryResult<Vec<(EventView, i64)>> {
    let rows: Vec<EventRow> = sql_query(
        "SELECT id, spec, sale_state, (extract(epoch FROM created_at) * 1000)::bigint AS created_ms FROM events ORDER BY created_at DESC",
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| event_view(r, now_ms))
        .collect())
}

fn event_view(r: EventRow, now_ms: i64) -> Option<(EventView, i64)> {
    match serde_json::from_value::<EventSpec>(r.spec) {
        Ok(spec) => Some((
            EventView::new(EventId(r.id), spec, sale_from_name(&r.sale_state), now_ms),
            r.created_ms,
        )),
        Err(e) => {
            tracing::error!(event = %r.id, error = %e, "stored event spec does not parse");
            None
        }
    }
}

#[derive(QueryableByName)]
struct TallyRow {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    reject_reason: Option<String>,
    #[diesel(sql_type = BigInt)]
    bookings: i64,
    #[diesel(sql_type = BigInt)]
    cents: i64,
}

/// An event's bookings counted by status and rejection reason.
pub async fn booking_tally(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> diesel::QueryResult<BookingTally> {
    let rows: Vec<TallyRow> = sql_query(
        "SELECT status, reject_reason, count(*) AS bookings, coalesce(sum(total_cents), 0)::bigint AS cents \
         FROM bookings WHERE event_id = $1 GROUP BY status, reject_reason \
         UNION ALL SELECT 'rejected', reject_reason, bookings, 0::bigint FROM swept_refusals WHERE event_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(event_id)
    .load(conn)
    .await?;
    let mut tally = BookingTally::default();
    for r in rows {
        let count = u64::try_from(r.bookings).unwrap_or(0);
        tally.add(&r.status, r.reject_reason.as_deref(), count, r.cents);
    }
    Ok(tally)
}

#[derive(QueryableByName)]
pub struct ActiveSeat {
    #[diesel(sql_type = Text)]
    pub seat_id: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub booking_id: Uuid,
    #[diesel(sql_type = Text)]
    pub status: String,
}

/// Every held or sold seat of an event.
pub async fn active_seats(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> diesel::QueryResult<Vec<ActiveSeat>> {
    sql_query(
        "SELECT bs.seat_id, b.id AS booking_id, b.status FROM booking_seats bs JOIN bookings b ON b.id = bs.booking_id \
         WHERE bs.event_id = $1 AND bs.active",
    )
    .bind::<diesel::sql_types::Uuid, _>(event_id)
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct BookingRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    event_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    buyer_id: Uuid,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    reject_reason: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    hold_expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    total_cents: i64,
    #[diesel(sql_type = Text)]
    fingerprint: String,
    #[diesel(sql_type = Nullable<Text>)]
    payment_reference: Option<String>,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Array<Text>)]
    seats: Vec<String>,
}

/// A booking as stored, with the seats it holds or held.
pub async fn load_booking(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> diesel::QueryResult<Option<BookingView>> {
    let rows: Vec<BookingRow> = sql_query(
        "SELECT b.id, b.event_id, b.buyer_id, b.status, b.reject_reason, b.hold_expires_at, b.total_cents, \
         b.fingerprint, b.payment_reference, b.version, b.updated_at, \
         COALESCE(array_agg(bs.seat_id ORDER BY bs.seat_id) FILTER (WHERE bs.seat_id IS NOT NULL), '{}') AS seats \
         FROM bookings b LEFT JOIN booking_seats bs ON bs.booking_id = b.id WHERE b.id = $1 GROUP BY b.id",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|r| BookingView {
        id: r.id,
        event_id: r.event_id,
        buyer_id: r.buyer_id,
        status: r.status,
        seats: r.seats,
        reject_reason: r.reject_reason,
        hold_expires_at: r.hold_expires_at,
        total_cents: r.total_cents,
        payment_reference: r.payment_reference,
        updated_at: r.updated_at,
        fingerprint: r.fingerprint,
        version: r.version,
    }))
}

#[derive(QueryableByName)]
pub struct DueHold {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub event_id: Uuid,
    /// The partition that decided the booking: its expiry goes there (an
    /// event in several parts has its bookings on several partitions).
    #[diesel(sql_type = Integer)]
    pub kafka_partition: i32,
}

/// Held bookings past their expiry on the given partitions.
pub async fn due_holds(
    conn: &mut AsyncPgConnection,
    partitions: &[i32],
    limit: i64,
) -> diesel::QueryResult<Vec<DueHold>> {
    sql_query(
        "SELECT id, event_id, kafka_partition FROM bookings WHERE status = 'held' AND kafka_partition = ANY($1) \
         AND hold_expires_at <= now() ORDER BY hold_expires_at LIMIT $2",
    )
    .bind::<Array<Integer>, _>(partitions)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Deletes up to `limit` refused bookings last changed before `before`,
/// adding each to its event's count of swept refusals in the same
/// statement, so the organizer's figures stay whole. Returns how many went.
/// Several instances may sweep at once: a row is deleted, and so counted,
/// by one of them only.
pub async fn sweep_refusals(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> diesel::QueryResult<u64> {
    #[derive(QueryableByName)]
    struct Swept {
        #[diesel(sql_type = BigInt)]
        swept: i64,
    }
    let rows: Vec<Swept> = sql_query(
        "WITH gone AS ( \
           DELETE FROM bookings WHERE id IN ( \
             SELECT id FROM bookings WHERE status = 'rejected' AND updated_at < $1 \
             ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
           RETURNING event_id, reject_reason), \
         counted AS ( \
           INSERT INTO swept_refusals (event_id, reject_reason, bookings) \
           SELECT event_id, reject_reason, count(*) FROM gone GROUP BY event_id, reject_reason \
           ON CONFLICT (event_id, reject_reason) \
           DO UPDATE SET bookings = swept_refusals.bookings + EXCLUDED.bookings) \
         SELECT count(*) AS swept FROM gone",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| u64::try_from(r.swept).unwrap_or(0))
        .sum())
}
