//! The reservation-processor's batched PostgreSQL writes, against a real
//! PostgreSQL (a fresh database per run): a batch ends in the state its
//! outcomes applied one by one would leave, replays and stale outcomes
//! change nothing, and a seat sold twice is still refused by the database.

mod support;

use boxoffice_domain::{
    Booking, BookingId, BookingStatus, BuyerId, EventId, EventSpec, RejectReason, SaleState,
};
use boxoffice_processors::reservation::store::{self, BookingWrite};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

fn booking(n: u128, event: EventId, status: BookingStatus, seats: &[&str]) -> Booking {
    Booking {
        id: BookingId(Uuid::from_u128(n)),
        event_id: event,
        buyer: BuyerId(Uuid::from_u128(1000 + n)),
        seats: seats.iter().map(|s| s.parse().unwrap()).collect(),
        status,
        hold_expires_at_ms: 4_000_000_000_000,
        total_cents: 7900 * seats.len() as i64,
        fingerprint: format!("f{n}"),
        payment_reference: matches!(status, BookingStatus::Confirmed).then(|| "card".to_owned()),
        updated_at_ms: 1_700_000_000_000,
        quota_of: None,
    }
}

fn write(b: &Booking, version: i64) -> BookingWrite<'_> {
    BookingWrite {
        booking: b,
        partition: 0,
        version,
    }
}

async fn active(conn: &mut AsyncPgConnection, event: EventId) -> Vec<(String, Uuid, String)> {
    let mut seats: Vec<_> = store::active_seats(conn, event.0)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.seat_id, s.booking_id, s.status))
        .collect();
    seats.sort();
    seats
}

/// Per write, whether the cache must follow it.
async fn upsert(conn: &mut AsyncPgConnection, writes: &[BookingWrite<'_>]) -> Vec<bool> {
    store::upsert_bookings(conn, writes)
        .await
        .unwrap()
        .iter()
        .map(Option::is_some)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_bookings_is_written_as_if_one_by_one() {
    let url = format!(
        "{}/bx_test_store_{}",
        support::PG_SERVER,
        &Uuid::new_v4().simple().to_string()[..10]
    );
    boxoffice_platform::db::ensure_database(&url).await.unwrap();
    let pool = boxoffice_platform::db::pool(&url, 1).unwrap();
    boxoffice_platform::db::migrate(&pool).await.unwrap();
    let mut conn = pool.get().await.unwrap();
    let event = EventId(Uuid::new_v4());
    let spec = EventSpec::demo("Batch night", 1, 2, 5, 1_700_000_000_000);
    store::insert_event(&mut conn, event, &spec, SaleState::Open, 0)
        .await
        .unwrap();

    // A holds two seats and cancels; C takes one of them, all in one batch,
    // beside a refusal and another hold.
    let a_held = booking(1, event, BookingStatus::Held, &["A-1-1", "A-1-2"]);
    let b_refused = booking(
        2,
        event,
        BookingStatus::Rejected(RejectReason::SeatsTaken),
        &[],
    );
    let a_cancelled = booking(1, event, BookingStatus::Cancelled, &["A-1-1", "A-1-2"]);
    let c_held = booking(3, event, BookingStatus::Held, &["A-1-1"]);
    let d_held = booking(4, event, BookingStatus::Held, &["A-2-1"]);
    let batch = [
        write(&a_held, 1),
        write(&b_refused, 2),
        write(&a_cancelled, 3),
        write(&c_held, 4),
        write(&d_held, 5),
    ];
    assert_eq!(
        upsert(&mut conn, &batch).await,
        [false, true, true, true, true],
        "the cache follows the last outcome of each booking only"
    );
    let want = vec![
        ("A-1-1".to_owned(), c_held.id.0, "held".to_owned()),
        ("A-2-1".to_owned(), d_held.id.0, "held".to_owned()),
    ];
    assert_eq!(active(&mut conn, event).await, want);
    let a = store::load_booking(&mut conn, a_held.id.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.status, "cancelled");
    assert_eq!(
        a.seats,
        ["A-1-1", "A-1-2"],
        "a cancelled booking still shows what it held"
    );
    let b = store::load_booking(&mut conn, b_refused.id.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (b.status.as_str(), b.reject_reason.as_deref()),
        ("rejected", Some("seats_taken"))
    );
    assert!(b.seats.is_empty());

    // The same batch again (a replay after a crash) leaves the same state.
    upsert(&mut conn, &batch).await;
    assert_eq!(active(&mut conn, event).await, want);

    // C pays; then a stale copy of its hold arrives: it changes nothing.
    let c_confirmed = booking(3, event, BookingStatus::Confirmed, &["A-1-1"]);
    assert_eq!(upsert(&mut conn, &[write(&c_confirmed, 6)]).await, [true]);
    assert_eq!(upsert(&mut conn, &[write(&c_held, 4)]).await, [false]);
    let c = store::load_booking(&mut conn, c_held.id.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.status.as_str(), c.version), ("confirmed", 6));
    assert_eq!(active(&mut conn, event).await[0].2, "confirmed");

    // A seat given to a second booking while the first holds it is a double
    // sale: the database refuses the whole batch.
    let e_held = booking(5, event, BookingStatus::Held, &["A-2-1"]);
    let refused = store::upsert_bookings(&mut conn, &[write(&e_held, 7)]).await;
    let Err(diesel::result::Error::DatabaseError(_, info)) = refused else {
        panic!("a double sale must be refused: {refused:?}");
    };
    assert_eq!(info.constraint_name(), Some("one_active_booking_per_seat"));
}
