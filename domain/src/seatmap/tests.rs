use std::collections::HashMap;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const HOLD_MS: i64 = 60_000;

fn spec() -> EventSpec {
    let mut spec = EventSpec::demo("Test", 2, 3, 6, 0);
    spec.max_seats_per_buyer = 6;
    spec.hold_duration_ms = HOLD_MS;
    spec
}

fn event() -> EventId {
    EventId(Uuid::from_u128(1))
}

fn buyer(n: u128) -> BuyerId {
    BuyerId(Uuid::from_u128(100 + n))
}

fn booking(n: u128) -> BookingId {
    BookingId(Uuid::from_u128(1000 + n))
}

fn seat(s: &str) -> SeatId {
    s.parse().unwrap()
}

fn map() -> SeatMap {
    SeatMap::new(event(), spec())
}

fn cmd(at_ms: i64, kind: CommandKind) -> Command {
    Command { at_ms, kind }
}

fn request(n: u128, b: u128, selection: Selection) -> CommandKind {
    let fingerprint = format!("{selection:?}");
    CommandKind::RequestBooking {
        booking_id: booking(n),
        buyer: buyer(b),
        selection,
        fingerprint,
    }
}

fn single(t: &Transition) -> (Option<Booking>, Option<RejectReason>) {
    match t.outcomes.as_slice() {
        [
            Outcome::Booking {
                booking, rejection, ..
            },
        ] => (booking.clone(), *rejection),
        other => panic!("expected one booking outcome, got {other:?}"),
    }
}

#[test]
fn explicit_seats_are_held_all_or_nothing() {
    let mut m = map();
    let t = m.apply(&cmd(
        1,
        request(1, 1, Selection::Seats(vec![seat("A-1-1"), seat("A-1-2")])),
    ));
    let (b, rejection) = single(&t);
    assert_eq!(rejection, None);
    let b = b.unwrap();
    assert_eq!(b.status, BookingStatus::Held);
    assert_eq!(b.hold_expires_at_ms, 1 + HOLD_MS);
    assert_eq!(b.total_cents, 2 * 12_900);
    assert_eq!(m.status(&seat("A-1-1")), Some(SeatStatus::Held(booking(1))));

    let before = m.clone();
    let t = m.apply(&cmd(
        2,
        request(2, 2, Selection::Seats(vec![seat("A-1-3"), seat("A-1-2")])),
    ));
    assert_eq!(single(&t).1, Some(RejectReason::SeatsTaken));
    assert_eq!(
        m.status(&seat("A-1-3")),
        Some(SeatStatus::Free),
        "nothing of a refused request is held"
    );
    assert_eq!(
        m.seats().collect::<Vec<_>>(),
        before.seats().collect::<Vec<_>>()
    );
}

#[test]
fn replaying_a_request_returns_the_same_booking() {
    let mut m = map();
    let first = single(&m.apply(&cmd(
        1,
        request(
            1,
            1,
            Selection::BestAvailable {
                section: "A".parse().unwrap(),
                quantity: 2,
            },
        ),
    )));
    let again = m.apply(&cmd(
        5,
        request(
            1,
            1,
            Selection::BestAvailable {
                section: "A".parse().unwrap(),
                quantity: 2,
            },
        ),
    ));
    assert!(again.changes.is_empty());
    assert_eq!(single(&again), first);

    let reused = m.apply(&cmd(
        6,
        request(
            1,
            1,
            Selection::BestAvailable {
                section: "B".parse().unwrap(),
                quantity: 2,
            },
        ),
    ));
    assert_eq!(single(&reused).1, Some(RejectReason::IdempotencyKeyReused));
    assert!(reused.changes.is_empty());
}

#[test]
fn bad_requests_get_their_reason() {
    let mut m = map();
    let cases = [
        (
            Selection::Seats(vec![seat("A-9-1")]),
            RejectReason::UnknownSeat,
        ),
        (
            Selection::Seats(vec![seat("A-1-1"), seat("A-1-1")]),
            RejectReason::DuplicateSeat,
        ),
        (Selection::Seats(vec![]), RejectReason::InvalidQuantity),
        (
            Selection::BestAvailable {
                section: "Z".parse().unwrap(),
                quantity: 1,
            },
            RejectReason::UnknownSection,
        ),
        (
            Selection::BestAvailable {
                section: "A".parse().unwrap(),
                quantity: 7,
            },
            RejectReason::InvalidQuantity,
        ),
    ];
    for (i, (selection, reason)) in cases.into_iter().enumerate() {
        let t = m.apply(&cmd(1, request(i as u128, 1, selection)));
        assert_eq!(single(&t).1, Some(reason));
    }
}

#[test]
fn the_per_buyer_limit_counts_every_active_booking() {
    let mut m = map();
    let a = "A".parse::<SectionCode>().unwrap();
    assert_eq!(
        single(&m.apply(&cmd(
            1,
            request(
                1,
                1,
                Selection::BestAvailable {
                    section: a.clone(),
                    quantity: 4
                }
            )
        )))
        .1,
        None
    );
    let t = m.apply(&cmd(
        2,
        request(
            2,
            1,
            Selection::BestAvailable {
                section: a.clone(),
                quantity: 3,
            },
        ),
    ));
    assert_eq!(single(&t).1, Some(RejectReason::BuyerLimitExceeded));
    m.apply(&cmd(
        3,
        CommandKind::CancelBooking {
            booking_id: booking(1),
            buyer: buyer(1),
        },
    ));
    assert_eq!(
        single(&m.apply(&cmd(
            4,
            request(
                3,
                1,
                Selection::BestAvailable {
                    section: a,
                    quantity: 3
                }
            )
        )))
        .1,
        None
    );
}

#[test]
fn sale_window_and_manual_open_close() {
    let mut s = spec();
    s.sale_opens_at_ms = 100;
    s.sale_closes_at_ms = 200;
    let mut m = SeatMap::new(event(), s);
    let pick = || Selection::Seats(vec![seat("B-1-1")]);
    assert_eq!(
        single(&m.apply(&cmd(50, request(1, 1, pick())))).1,
        Some(RejectReason::SaleNotOpen)
    );
    m.apply(&cmd(60, CommandKind::SetSale { open: true }));
    assert_eq!(single(&m.apply(&cmd(70, request(2, 1, pick())))).1, None);
    m.apply(&cmd(80, CommandKind::SetSale { open: false }));
    assert_eq!(
        single(&m.apply(&cmd(
            150,
            request(3, 2, Selection::Seats(vec![seat("B-1-2")]))
        )))
        .1,
        Some(RejectReason::SaleNotOpen)
    );
}

#[test]
fn confirm_sells_and_confirm_after_expiry_is_refused() {
    let mut m = map();
    m.apply(&cmd(
        0,
        request(1, 1, Selection::Seats(vec![seat("A-1-1")])),
    ));
    m.apply(&cmd(
        0,
        request(2, 2, Selection::Seats(vec![seat("A-1-2")])),
    ));
    let pay = |n, b, at| {
        cmd(
            at,
            CommandKind::ConfirmBooking {
                booking_id: booking(n),
                buyer: buyer(b),
                payment_reference: "pay-1".into(),
            },
        )
    };

    assert_eq!(
        single(&m.apply(&pay(1, 2, 10))).1,
        Some(RejectReason::NotYourBooking)
    );
    let (b, rejection) = single(&m.apply(&pay(1, 1, HOLD_MS)));
    assert_eq!(rejection, None);
    assert_eq!(b.unwrap().status, BookingStatus::Confirmed);
    assert_eq!(m.status(&seat("A-1-1")), Some(SeatStatus::Sold(booking(1))));
    let counts = m.counts();
    assert_eq!((counts.held, counts.sold), (1, 1), "{counts:?}");
    assert_eq!(
        counts.free + counts.held + counts.sold,
        m.spec().venue.capacity()
    );
    assert_eq!(
        single(&m.apply(&pay(1, 1, HOLD_MS + 5))).1,
        None,
        "confirming twice is idempotent"
    );

    let (b, rejection) = single(&m.apply(&pay(2, 2, HOLD_MS + 1)));
    assert_eq!(rejection, Some(RejectReason::HoldExpired));
    assert_eq!(b.unwrap().status, BookingStatus::Expired);
    assert_eq!(m.status(&seat("A-1-2")), Some(SeatStatus::Free));
}

#[test]
fn expiry_releases_only_due_holds() {
    let mut m = map();
    m.apply(&cmd(
        0,
        request(1, 1, Selection::Seats(vec![seat("A-2-1"), seat("A-2-2")])),
    ));
    let early = m.apply(&cmd(
        HOLD_MS - 1,
        CommandKind::ExpireHold {
            booking_id: booking(1),
        },
    ));
    assert_eq!(early, Transition::default());
    let t = m.apply(&cmd(
        HOLD_MS,
        CommandKind::ExpireHold {
            booking_id: booking(1),
        },
    ));
    assert_eq!(single(&t).0.unwrap().status, BookingStatus::Expired);
    assert_eq!(m.status(&seat("A-2-1")), Some(SeatStatus::Free));
    assert_eq!(m.status(&seat("A-2-2")), Some(SeatStatus::Free));
    assert_eq!(
        m.apply(&cmd(
            HOLD_MS + 1,
            CommandKind::ExpireHold {
                booking_id: booking(1)
            }
        )),
        Transition::default()
    );
}

#[test]
fn commands_for_an_unknown_event_are_refused_and_create_is_idempotent() {
    let mut none = None;
    let t = SeatMap::apply_to(
        &mut none,
        event(),
        &cmd(0, request(1, 1, Selection::Seats(vec![seat("A-1-1")]))),
    );
    assert_eq!(single(&t), (None, Some(RejectReason::UnknownEvent)));
    assert!(none.is_none());

    let create = cmd(
        0,
        CommandKind::CreateEvent {
            spec: spec(),
            part: 0,
        },
    );
    let t = SeatMap::apply_to(&mut none, event(), &create);
    assert!(matches!(t.outcomes[0], Outcome::EventCreated { .. }));
    let again = SeatMap::apply_to(&mut none, event(), &create);
    assert!(matches!(again.outcomes[0], Outcome::EventCreated { .. }));
    assert!(again.changes.is_empty());
    let other = SeatMap::apply_to(
        &mut none,
        event(),
        &cmd(
            0,
            CommandKind::CreateEvent {
                spec: EventSpec::demo("x", 1, 1, 1, 0),
                part: 0,
            },
        ),
    );
    assert_eq!(
        other.outcomes[0],
        Outcome::EventRejected {
            reason: RejectReason::EventExists
        }
    );
}

#[test]
fn a_refusal_answers_retries_for_its_ttl_and_is_then_forgotten() {
    let mut m = map();
    m.apply(&cmd(0, CommandKind::SetSale { open: true }));
    let taken = || request(2, 2, Selection::Seats(vec![seat("A-1-1")]));
    single(&m.apply(&cmd(
        1,
        request(1, 1, Selection::Seats(vec![seat("A-1-1")])),
    )));
    let (refused, reason) = single(&m.apply(&cmd(10, taken())));
    assert_eq!(reason, Some(RejectReason::SeatsTaken));
    let refused = refused.expect("a refusal is kept");

    // The seat comes free, but a retry inside the TTL gets the same answer.
    m.apply(&cmd(
        20,
        CommandKind::CancelBooking {
            booking_id: booking(1),
            buyer: buyer(1),
        },
    ));
    let retry = m.apply(&cmd(10 + REFUSAL_TTL_MS, taken()));
    assert_eq!(
        single(&retry),
        (Some(refused), Some(RejectReason::SeatsTaken))
    );
    assert!(retry.changes.is_empty(), "a retry changes nothing");

    // Any later command of the event forgets it, in the state changes too.
    let later = m.apply(&cmd(
        11 + REFUSAL_TTL_MS,
        CommandKind::ExpireHold {
            booking_id: booking(9),
        },
    ));
    assert_eq!(later.changes, vec![StateChange::Forgotten(booking(2))]);
    assert_eq!(m.booking(booking(2)), None);
    // The same key is now a new request, decided afresh.
    let (b, reason) = single(&m.apply(&cmd(12 + REFUSAL_TTL_MS, taken())));
    assert_eq!(
        (b.map(|b| b.status), reason),
        (Some(BookingStatus::Held), None)
    );
}

#[test]
fn an_event_over_long_enough_is_retired_and_refuses_everything() {
    let mut m = map();
    m.apply(&cmd(0, CommandKind::SetSale { open: true }));
    single(&m.apply(&cmd(
        1,
        request(1, 1, Selection::Seats(vec![seat("A-1-1")])),
    )));
    single(&m.apply(&cmd(
        2,
        request(2, 1, Selection::Seats(vec![seat("Z-1-1")])),
    )));
    let end = spec().starts_at_ms.max(spec().sale_closes_at_ms) + RETIRE_AFTER_MS;
    assert!(!m.retire_due(end));
    assert!(m.retire_due(end + 1));
    let changes = m.retire();
    assert!(changes.contains(&StateChange::Forgotten(booking(1))));
    assert!(changes.contains(&StateChange::Forgotten(booking(2))));
    assert_eq!(
        changes.last(),
        Some(&StateChange::Event {
            spec: spec(),
            sale: SaleState::Open,
            retired: true,
            part: 0,
        })
    );
    assert!(m.is_retired() && !m.retire_due(end + 2));
    assert_eq!((m.bookings().count(), m.seats().count()), (0, 0));

    let t = m.apply(&cmd(
        end + 2,
        request(3, 1, Selection::Seats(vec![seat("A-1-2")])),
    ));
    assert_eq!(single(&t), (None, Some(RejectReason::SaleNotOpen)));
    assert!(t.changes.is_empty(), "a retired event remembers no refusal");
    let t = m.apply(&cmd(end + 3, CommandKind::SetSale { open: true }));
    assert_eq!(
        t.outcomes,
        vec![Outcome::EventRejected {
            reason: RejectReason::SaleNotOpen
        }]
    );
    let t = m.apply(&cmd(
        end + 4,
        CommandKind::CreateEvent {
            spec: spec(),
            part: 0,
        },
    ));
    assert_eq!(
        t.outcomes,
        vec![Outcome::EventRejected {
            reason: RejectReason::EventExists
        }]
    );
    let t = m.apply(&cmd(
        end + 5,
        CommandKind::ConfirmBooking {
            booking_id: booking(1),
            buyer: buyer(1),
            payment_reference: "p".into(),
        },
    ));
    assert_eq!(single(&t), (None, Some(RejectReason::UnknownBooking)));
}

#[test]
fn stored_bookings_that_cannot_be_one_state_are_refused() {
    let mut m = map();
    single(&m.apply(&cmd(
        1,
        request(1, 1, Selection::Seats(vec![seat("A-1-1")])),
    )));
    let held = m.booking(booking(1)).unwrap().clone();
    let mut twin = held.clone();
    twin.id = booking(2);
    twin.buyer = buyer(2);
    assert_eq!(
        SeatMap::from_parts(
            event(),
            spec(),
            0,
            SaleState::Open,
            [held.clone(), twin.clone()]
        ),
        Err(PartsError::SeatTakenTwice {
            seat: seat("A-1-1"),
            first: booking(1),
            second: booking(2)
        })
    );
    // A released booking keeps its seat list but not its seats.
    twin.status = BookingStatus::Cancelled;
    let rebuilt =
        SeatMap::from_parts(event(), spec(), 0, SaleState::Open, [held.clone(), twin]).unwrap();
    assert_eq!(
        rebuilt.status(&seat("A-1-1")),
        Some(SeatStatus::Held(booking(1)))
    );
    let mut stray = held;
    stray.seats = vec![seat("Q-9-9")];
    assert_eq!(
        SeatMap::from_parts(event(), spec(), 0, SaleState::Open, [stray]),
        Err(PartsError::NoSuchSeat {
            seat: seat("Q-9-9"),
            booking: booking(1)
        })
    );
}

#[test]
fn seat_indices_round_trip() {
    let m = map();
    for (i, (s, status)) in m.seats().enumerate() {
        assert_eq!(status, SeatStatus::Free);
        assert_eq!(m.seat_index(&s), Some(i));
    }
    assert_eq!(m.seat_index(&seat("A-1-7")), None);
}

// ---- properties over random command sequences ----

fn arb_seat() -> impl Strategy<Value = SeatId> {
    (
        prop_oneof![Just("A"), Just("B"), Just("C")],
        1u16..=4,
        1u16..=7,
    )
        .prop_map(|(s, r, n)| seat(&format!("{s}-{r}-{n}")))
}

fn arb_kind() -> impl Strategy<Value = CommandKind> {
    let ids = 0u128..12;
    let buyers = 0u128..4;
    prop_oneof![
        4 => (ids.clone(), buyers.clone(), prop::collection::vec(arb_seat(), 0..4))
            .prop_map(|(n, b, seats)| request(n, b, Selection::Seats(seats))),
        4 => (ids.clone(), buyers.clone(), prop_oneof![Just("A"), Just("B"), Just("C")], 0u16..5)
            .prop_map(|(n, b, s, quantity)| request(n, b, Selection::BestAvailable { section: s.parse().unwrap(), quantity })),
        2 => (ids.clone(), buyers.clone()).prop_map(|(n, b)| CommandKind::ConfirmBooking { booking_id: booking(n), buyer: buyer(b), payment_reference: "p".into() }),
        2 => (ids.clone(), buyers).prop_map(|(n, b)| CommandKind::CancelBooking { booking_id: booking(n), buyer: buyer(b) }),
        2 => ids.prop_map(|n| CommandKind::ExpireHold { booking_id: booking(n) }),
        1 => any::<bool>().prop_map(|open| CommandKind::SetSale { open }),
    ]
}

fn arb_commands() -> impl Strategy<Value = Vec<Command>> {
    // Steps up to a hold; thirty of them reach past REFUSAL_TTL_MS.
    prop::collection::vec((0i64..REFUSAL_TTL_MS / 10, arb_kind()), 1..60).prop_map(|steps| {
        let mut at = 0;
        steps
            .into_iter()
            .map(|(dt, kind)| {
                at += dt;
                cmd(at, kind)
            })
            .collect()
    })
}

/// Checks that seats and bookings agree: every taken seat belongs to exactly
/// one active booking that lists it, and vice versa.
fn assert_consistent(m: &SeatMap) -> Result<(), TestCaseError> {
    let mut owner: HashMap<SeatId, BookingId> = HashMap::new();
    for b in m.bookings().filter(|b| b.status.is_active()) {
        for s in &b.seats {
            prop_assert!(
                owner.insert(s.clone(), b.id).is_none(),
                "seat {s} given to two bookings"
            );
            let expected = if b.status == BookingStatus::Held {
                SeatStatus::Held(b.id)
            } else {
                SeatStatus::Sold(b.id)
            };
            prop_assert_eq!(m.status(s), Some(expected));
        }
    }
    for (s, status) in m.seats() {
        prop_assert_eq!(
            status.booking(),
            owner.get(&s).copied(),
            "seat {} out of step",
            s
        );
    }
    let mut per_buyer: HashMap<BuyerId, usize> = HashMap::new();
    for b in m.bookings().filter(|b| b.status.is_active()) {
        *per_buyer.entry(b.buyer).or_default() += b.seats.len();
    }
    for (b, n) in per_buyer {
        prop_assert!(
            n <= usize::from(m.spec().max_seats_per_buyer),
            "buyer {b} over the limit"
        );
    }
    Ok(())
}

/// Rebuilds a seat map from nothing but the state changes, as a restore
/// from the changelog does: the seats come from the bookings alone.
fn rebuild(changes: &[StateChange]) -> SeatMap {
    let mut meta = (spec(), SaleState::Scheduled);
    let mut bookings = HashMap::new();
    for c in changes {
        match c {
            StateChange::Event { spec, sale, .. } => meta = (spec.clone(), *sale),
            StateChange::Booking(b) => {
                bookings.insert(b.id, b.clone());
            }
            StateChange::Forgotten(id) => {
                bookings.remove(id);
            }
        }
    }
    SeatMap::from_parts(event(), meta.0, 0, meta.1, bookings.into_values())
        .expect("the changes of one seat map are consistent")
}

proptest! {
    #[test]
    fn no_seat_is_ever_given_to_two_bookings(commands in arb_commands()) {
        let mut m = map();
        for c in &commands {
            m.apply(c);
            assert_consistent(&m)?;
        }
    }

    #[test]
    fn a_refused_command_changes_no_seat(commands in arb_commands()) {
        let mut m = map();
        for c in &commands {
            let before = m.clone();
            let t = m.apply(c);
            let refused = t.outcomes.iter().any(|o| matches!(o,
                Outcome::Booking { rejection: Some(r), .. } if *r != RejectReason::HoldExpired));
            if refused {
                prop_assert_eq!(m.seats().collect::<Vec<_>>(), before.seats().collect::<Vec<_>>());
                for b in before.bookings() {
                    let expired_refusal = matches!(b.status, BookingStatus::Rejected(_))
                        && b.updated_at_ms + REFUSAL_TTL_MS < c.at_ms;
                    if !expired_refusal {
                        prop_assert_eq!(m.booking(b.id), Some(b), "an existing booking changed");
                    }
                }
            }
        }
    }

    #[test]
    fn released_holds_become_free(commands in arb_commands()) {
        let mut m = map();
        for c in &commands {
            let t = m.apply(c);
            for c in &t.changes {
                if let StateChange::Booking(b) = c
                    && matches!(b.status, BookingStatus::Cancelled | BookingStatus::Expired)
                {
                    for s in &b.seats {
                        prop_assert_eq!(m.status(s), Some(SeatStatus::Free));
                    }
                }
            }
        }
    }

    #[test]
    fn refusals_are_remembered_for_their_ttl_and_then_forgotten(commands in arb_commands()) {
        let mut m = map();
        for c in &commands {
            m.apply(c);
            for b in m.bookings() {
                if matches!(b.status, BookingStatus::Rejected(_)) {
                    prop_assert!(b.updated_at_ms + REFUSAL_TTL_MS >= c.at_ms, "an expired refusal is still kept");
                }
            }
        }
    }

    #[test]
    fn state_changes_rebuild_the_same_seat_map(commands in arb_commands()) {
        let mut live = map();
        let mut log = vec![StateChange::Event { spec: spec(), sale: SaleState::Scheduled, retired: false, part: 0 }];
        for c in &commands {
            log.extend(live.apply(c).changes);
        }
        prop_assert_eq!(rebuild(&log), live.clone());

        let mut replayed = map();
        for c in &commands {
            replayed.apply(c);
        }
        prop_assert_eq!(replayed, live, "replaying the same commands is deterministic");
    }
}

#[test]
fn every_rejection_code_is_unique_and_found_again() {
    let codes: std::collections::HashSet<_> = RejectReason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), RejectReason::ALL.len());
    for r in RejectReason::ALL {
        assert_eq!(RejectReason::from_code(r.code()), Some(r));
    }
    assert_eq!(RejectReason::from_code("nope"), None);
}
