//! Hostile input, in one place for two runners: the coverage-guided
//! fuzzers in `fuzz/` (cargo-fuzz and libFuzzer, `scripts/fuzz.sh`) call
//! these functions with the bytes they generate, and the test command
//! replays the seeds below and every input kept in `fuzz/regressions/`.
//! Each function panics only when boxoffice does something wrong with what
//! it was given; refusing the input is the right answer to almost all of it.
//!
//! - [`avro`]: any bytes as a message of every topic. Whatever is read
//!   must encode and read back to the same value.
//! - [`commands`]: bytes split into messages of `booking-commands`, each
//!   read and applied to one event's seat map as the seat-processor does:
//!   a malformed or hostile command must never crash it, and no seat may
//!   end up held or sold by two bookings.
//! - [`requests`]: the API's request bodies and path parameters, through
//!   the same parsing and checks its handlers run.

use std::collections::HashMap;

use boxoffice_backend::accounts::{check_password, normalize_email};
use boxoffice_backend::routes::bookings::{BookingRequest, selection};
use boxoffice_backend::routes::events::CreateEvent;
use boxoffice_domain::{
    BookingId, BuyerId, Command, CommandKind, EventId, EventSpec, RowLabel, SeatId, SeatMap,
    SectionCode, Selection,
};
use boxoffice_platform::messages::{
    CommandEnvelope, decode_changelog, decode_command, decode_outcome, decode_state,
    encode_changelog, encode_command, encode_outcome, encode_state,
};
use boxoffice_platform::views::EventView;
use uuid::Uuid;

/// Reads `data` as a message of every topic; what is read must survive a
/// round trip through its encoder.
pub fn avro(data: &[u8]) {
    if let Ok(c) = decode_command(data) {
        let again = decode_command(&encode_command(&c)).expect("an encoded command reads back");
        assert_eq!(again, c, "a command changed in a round trip");
    }
    if let Ok(o) = decode_outcome(data) {
        let again = decode_outcome(&encode_outcome(&o)).expect("an encoded outcome reads back");
        assert_eq!(again, o, "an outcome changed in a round trip");
    }
    if let Ok(s) = decode_state(data) {
        let again = decode_state(&encode_state(&s)).expect("an encoded state record reads back");
        assert_eq!(again, s, "a state record changed in a round trip");
    }
    if let Ok(r) = decode_changelog(data) {
        let again = decode_changelog(&encode_changelog(&r))
            .expect("an encoded changelog record reads back");
        assert_eq!(again, r, "a changelog record changed in a round trip");
    }
}

/// The event every command of [`commands`] lands on, created first.
fn event() -> EventId {
    EventId(Uuid::from_u128(0xb0))
}

fn spec() -> EventSpec {
    EventSpec::demo("Fuzzed night", 2, 3, 6, 0)
}

/// Splits `data` into frames (two bytes of length, little-endian, then the
/// message), reads each as a command and applies it to one event's seat
/// map, which starts created and on sale. Whatever the commands, no seat
/// is held or sold by two bookings, and no booking holds more seats than
/// the event allows one buyer.
pub fn commands(data: &[u8]) {
    let mut map = None;
    let open = [
        CommandKind::CreateEvent {
            spec: spec(),
            part: 0,
        },
        CommandKind::SetSale { open: true },
    ];
    for kind in open {
        SeatMap::apply_to(&mut map, event(), &Command { at_ms: 1, kind });
    }
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let body = &rest[2..];
        let (frame, after) = body.split_at(len.min(body.len()));
        rest = after;
        if let Ok(envelope) = decode_command(frame) {
            // Whatever event it names, as a command of this event.
            SeatMap::apply_to(&mut map, event(), &envelope.command);
        }
    }
    let Some(map) = map else { return };
    let limit = usize::from(map.spec().max_seats_per_buyer);
    let mut owners: HashMap<SeatId, BookingId> = HashMap::new();
    let mut per_buyer: HashMap<BuyerId, usize> = HashMap::new();
    for booking in map.bookings().filter(|b| b.status.is_active()) {
        for seat in &booking.seats {
            if let Some(other) = owners.insert(seat.clone(), booking.id) {
                panic!(
                    "seat {seat} is taken by bookings {other} and {}",
                    booking.id
                );
            }
        }
        let n = per_buyer.entry(booking.buyer).or_default();
        *n += booking.seats.len();
        assert!(
            *n <= limit,
            "buyer {} has {n} seats, over {limit}",
            booking.buyer
        );
    }
}

/// The API's parsers: the first byte picks one, the rest is its input.
pub fn requests(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 4 {
        0 => {
            let view = EventView::new(event(), spec(), boxoffice_domain::SaleState::Open, 0);
            if let Ok(body) = serde_json::from_slice::<BookingRequest>(rest)
                && let Ok(picked) = selection(body, &view)
            {
                match picked {
                    Selection::Seats(seats) => {
                        assert!(!seats.is_empty() && seats.len() <= 8);
                        assert!(seats.iter().all(|s| view.spec.venue.contains(s)));
                    }
                    Selection::BestAvailable { section, quantity } => {
                        assert!(view.spec.venue.section(&section).is_some());
                        assert!((1..=8).contains(&quantity));
                    }
                }
            }
        }
        1 => {
            if let Ok(body) = serde_json::from_slice::<CreateEvent>(rest)
                && let Ok(spec) = body.into_spec(Uuid::from_u128(1))
            {
                // What the API accepts, a seat-processor can put on sale.
                let mut map = None;
                let kind = CommandKind::CreateEvent { spec, part: 0 };
                SeatMap::apply_to(&mut map, event(), &Command { at_ms: 0, kind });
                assert!(map.is_some());
            }
        }
        2 => {
            if let Ok(email) = normalize_email(&text) {
                assert_eq!(normalize_email(&email).as_ref(), Ok(&email));
                let _ = check_password(&text, &email);
            }
        }
        _ => {
            // Path parameters and the ids inside bodies: what parses
            // prints back as itself.
            if let Ok(seat) = text.parse::<SeatId>() {
                assert_eq!(seat.to_string().parse::<SeatId>(), Ok(seat));
            }
            if let Ok(section) = text.parse::<SectionCode>() {
                assert_eq!(section.to_string().parse::<SectionCode>(), Ok(section));
            }
            if let Ok(row) = text.parse::<RowLabel>() {
                assert_eq!(row.to_string().parse::<RowLabel>(), Ok(row));
            }
            let _ = text.parse::<Uuid>();
        }
    }
}

/// Valid inputs for every target, from which the fuzzers start.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let buyer = BuyerId(Uuid::from_u128(9));
    let kinds = [
        CommandKind::SetSale { open: true },
        CommandKind::RequestBooking {
            booking_id: BookingId(Uuid::from_u128(7)),
            buyer,
            selection: Selection::Seats(vec![
                "A-1-1".parse().expect("a seat id"),
                "A-1-2".parse().expect("a seat id"),
            ]),
            fingerprint: "f".into(),
        },
        CommandKind::RequestBooking {
            booking_id: BookingId(Uuid::from_u128(8)),
            buyer: BuyerId(Uuid::from_u128(10)),
            selection: Selection::BestAvailable {
                section: "B".parse().expect("a section code"),
                quantity: 3,
            },
            fingerprint: "g".into(),
        },
        CommandKind::ConfirmBooking {
            booking_id: BookingId(Uuid::from_u128(7)),
            buyer,
            payment_reference: "psp-1".into(),
        },
        CommandKind::CancelBooking {
            booking_id: BookingId(Uuid::from_u128(8)),
            buyer: BuyerId(Uuid::from_u128(10)),
        },
        CommandKind::CreateEvent {
            spec: spec(),
            part: 0,
        },
    ];
    let messages: Vec<Vec<u8>> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            encode_command(&CommandEnvelope {
                event_id: event(),
                reply_to: Some("api-1".into()),
                command: Command {
                    at_ms: 10 + i64::try_from(i).unwrap_or(0),
                    kind,
                },
            })
        })
        .collect();
    let mut seeds: Vec<(&'static str, Vec<u8>)> =
        messages.iter().map(|m| ("avro", m.clone())).collect();
    let mut framed = Vec::new();
    for m in &messages {
        framed.extend_from_slice(&u16::try_from(m.len()).unwrap_or(u16::MAX).to_le_bytes());
        framed.extend_from_slice(m);
    }
    seeds.push(("commands", framed));
    let with = |which: u8, body: &str| {
        let mut v = vec![which];
        v.extend_from_slice(body.as_bytes());
        ("requests", v)
    };
    seeds.extend([
        with(0, r#"{"seats": ["A-1-1", "A-1-2"]}"#),
        with(0, r#"{"section": "B", "quantity": 2}"#),
        with(
            1,
            r#"{"name": "Gala", "starts_at": "2030-01-02T20:00:00Z", "sale_opens_at": "2030-01-01T10:00:00Z",
                "sale_closes_at": "2030-01-02T19:00:00Z",
                "venue": {"name": "Hall", "sections": [{"code": "A", "name": "Stalls", "price_category": "P",
                    "rows": [{"label": "1", "seats": 10}, {"label": "2", "seats": 12}]}]},
                "price_categories": [{"code": "P", "name": "Premium", "price_cents": 5000, "currency": "EUR"}],
                "max_seats_per_buyer": 4, "hold_duration_seconds": 600, "parts": 1}"#,
        ),
        with(2, " Ana.Lima@Example.com "),
        with(3, "A-12-7"),
        with(3, "0190a6f2-7c3e-7b1a-9e4f-3c2d1b0a9f8e"),
    ]);
    seeds
}

/// Runs the target named `target` on `data`.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "avro" => avro(data),
        "commands" => commands(data),
        "requests" => requests(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// The names of every target, as `fuzz/` builds them.
pub const TARGETS: [&str; 3] = ["avro", "commands", "requests"];
