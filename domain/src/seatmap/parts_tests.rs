//! One event decided in several parts (docs/event-partitioning.md): each
//! part is a [`SeatMap`] of its own, and the parts talk only through
//! [`Forward`] commands, delivered here through one FIFO queue per part, as
//! the partitions of `booking-commands` deliver them.

use std::collections::{HashSet, VecDeque};

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const HOLD_MS: i64 = 60_000;
const LIMIT: u16 = 4;

fn spec(parts: u16) -> EventSpec {
    let mut spec = EventSpec::demo("Parts", 4, 2, 4, 0);
    spec.max_seats_per_buyer = LIMIT;
    spec.hold_duration_ms = HOLD_MS;
    spec.parts = parts;
    spec.validate().unwrap();
    spec
}

fn event() -> EventId {
    EventId(Uuid::from_u128(1))
}

/// Buyer `n`; its home part is `n % parts`.
fn buyer(n: u128) -> BuyerId {
    BuyerId(Uuid::from_u128(n))
}

fn section(i: usize) -> SectionCode {
    char::from(b'A' + i as u8).to_string().parse().unwrap()
}

/// The parts of one event and the commands in flight between them.
struct Venue {
    maps: Vec<SeatMap>,
    queues: Vec<VecDeque<Command>>,
    /// Per part, every command applied, with the state before it (for replays).
    history: Vec<Vec<(SeatMap, Command)>>,
    outcomes: Vec<Outcome>,
}

impl Venue {
    fn new(parts: u16) -> Self {
        let maps = (0..parts)
            .map(|p| {
                let mut slot = None;
                let create = Command {
                    at_ms: 0,
                    kind: CommandKind::CreateEvent {
                        spec: spec(parts),
                        part: p,
                    },
                };
                SeatMap::apply_to(&mut slot, event(), &create);
                let mut m = slot.unwrap();
                m.apply(&Command {
                    at_ms: 0,
                    kind: CommandKind::SetSale { open: true },
                });
                m
            })
            .collect();
        Self {
            maps,
            queues: vec![VecDeque::new(); usize::from(parts)],
            history: vec![Vec::new(); usize::from(parts)],
            outcomes: Vec::new(),
        }
    }

    fn send(&mut self, part: u16, at_ms: i64, kind: CommandKind) {
        self.queues[usize::from(part)].push_back(Command { at_ms, kind });
    }

    /// Applies the next command of `part`, if any.
    fn deliver(&mut self, part: usize) -> bool {
        let Some(c) = self.queues[part].pop_front() else {
            return false;
        };
        self.history[part].push((self.maps[part].clone(), c.clone()));
        let t = self.maps[part].apply(&c);
        for o in &t.outcomes {
            if let Outcome::Booking {
                booking: Some(b), ..
            } = o
            {
                assert!(
                    b.status != BookingStatus::Pending && b.quota_of.is_none(),
                    "an outcome shows {b:?}"
                );
            }
        }
        self.outcomes.extend(t.outcomes);
        for f in t.forwards {
            self.send(f.part, c.at_ms, f.kind);
        }
        true
    }

    /// A crash of `part`'s writer: its state goes back `k` commands and
    /// those commands are applied again, sending their forwards twice.
    fn replay(&mut self, part: usize, k: usize) {
        let n = self.history[part].len();
        let k = k.min(n);
        if k == 0 {
            return;
        }
        let replayed: Vec<(SeatMap, Command)> = self.history[part].drain(n - k..).collect();
        let mut m = replayed[0].0.clone();
        for (before, c) in &replayed {
            assert_eq!(&m, before, "a replay passes through the same states");
            let t = m.apply(c);
            for f in t.forwards {
                self.send(f.part, c.at_ms, f.kind);
            }
        }
        assert_eq!(m, self.maps[part], "a replay ends in the same state");
        self.history[part].extend(replayed);
    }

    fn drain(&mut self) {
        while (0..self.maps.len()).any(|p| self.deliver(p)) {}
    }

    /// The part a booking was decided in, and the booking, if it exists.
    fn booking(&self, id: BookingId) -> Option<(usize, &Booking)> {
        self.maps.iter().enumerate().find_map(|(p, m)| {
            m.booking(id)
                .filter(|b| b.quota_of.is_none())
                .map(|b| (p, b))
        })
    }

    /// Seats a buyer holds or owns, over every part.
    fn seats_of(&self, who: BuyerId) -> usize {
        self.maps
            .iter()
            .flat_map(|m| m.bookings())
            .filter(|b| {
                b.buyer == who
                    && b.quota_of.is_none()
                    && matches!(b.status, BookingStatus::Held | BookingStatus::Confirmed)
            })
            .map(|b| b.seats.len())
            .sum()
    }

    fn counted_at_home(&self, who: BuyerId) -> usize {
        let home = self.maps[0].spec().home_part(who);
        self.maps[usize::from(home)]
            .seats_per_buyer
            .get(&who)
            .copied()
            .unwrap_or(0)
    }
}

/// The request the API sends to `part` for buyer `n`.
fn request(n: u128, key: &str, part: u16, selection: Selection) -> CommandKind {
    CommandKind::RequestBooking {
        booking_id: BookingId::for_request(buyer(n), key, part),
        buyer: buyer(n),
        selection,
        fingerprint: key.to_owned(),
    }
}

fn best(section_index: usize, quantity: u16) -> Selection {
    Selection::BestAvailable {
        section: section(section_index),
        quantity,
    }
}

fn held(v: &Venue, n: u128, key: &str, part: u16) -> Option<BookingStatus> {
    v.booking(BookingId::for_request(buyer(n), key, part))
        .map(|(_, b)| b.status)
}

#[test]
fn a_booking_outside_the_home_part_is_held_once_the_home_part_counts_it() {
    let mut v = Venue::new(2);
    // Buyer 2's home is part 0; section B (index 1) is decided by part 1.
    v.send(1, 10, request(2, "k1", 1, best(1, 3)));
    v.deliver(1);
    assert_eq!(held(&v, 2, "k1", 1), Some(BookingStatus::Pending));
    assert!(
        v.outcomes.is_empty(),
        "nobody is told while the home part decides"
    );
    assert_eq!(
        v.maps[1].counts().held,
        3,
        "the seats are taken for everyone else"
    );
    v.deliver(0);
    assert_eq!(v.counted_at_home(buyer(2)), 3);
    v.deliver(1);
    assert_eq!(held(&v, 2, "k1", 1), Some(BookingStatus::Held));
    assert!(matches!(
        &v.outcomes[..],
        [Outcome::Booking { booking: Some(b), rejection: None, .. }] if b.status == BookingStatus::Held
    ));

    // Two more seats at home would make five: refused at once, at home.
    v.send(0, 20, request(2, "k2", 0, best(0, 2)));
    v.deliver(0);
    assert!(matches!(
        v.outcomes.last(),
        Some(Outcome::Booking {
            rejection: Some(RejectReason::BuyerLimitExceeded),
            ..
        })
    ));
    // And in the third part's sections (part 1 again, section D): refused
    // after the round trip, the seats given back.
    v.send(1, 30, request(2, "k3", 1, best(3, 2)));
    v.drain();
    assert_eq!(
        held(&v, 2, "k3", 1),
        Some(BookingStatus::Rejected(RejectReason::BuyerLimitExceeded))
    );
    assert_eq!(v.maps[1].counts().held, 3);

    // Cancelling the first hands its seats back to the home part's count.
    v.send(
        1,
        40,
        CommandKind::CancelBooking {
            booking_id: BookingId::for_request(buyer(2), "k1", 1),
            buyer: buyer(2),
        },
    );
    v.drain();
    assert_eq!(v.counted_at_home(buyer(2)), 0);
    v.send(0, 50, request(2, "k4", 0, best(0, 4)));
    v.drain();
    assert_eq!(held(&v, 2, "k4", 0), Some(BookingStatus::Held));
}

#[test]
fn a_pending_booking_cannot_be_confirmed_and_a_repeated_request_waits() {
    let mut v = Venue::new(2);
    let id = BookingId::for_request(buyer(2), "k", 1);
    v.send(1, 10, request(2, "k", 1, best(1, 1)));
    v.send(1, 11, request(2, "k", 1, best(1, 1)));
    v.send(
        1,
        12,
        CommandKind::ConfirmBooking {
            booking_id: id,
            buyer: buyer(2),
            payment_reference: "pay".into(),
        },
    );
    v.deliver(1);
    v.deliver(1);
    assert!(
        v.outcomes.is_empty(),
        "the repeated request waits for the same answer"
    );
    v.deliver(1);
    assert!(matches!(
        v.outcomes.last(),
        Some(Outcome::Booking {
            rejection: Some(RejectReason::NotHeld),
            ..
        })
    ));
    v.drain();
    assert_eq!(held(&v, 2, "k", 1), Some(BookingStatus::Held));
}

#[test]
fn a_part_refuses_seats_it_does_not_decide() {
    let mut v = Venue::new(2);
    v.send(
        0,
        10,
        request(
            2,
            "k",
            0,
            Selection::Seats(vec!["A-1-1".parse().unwrap(), "B-1-1".parse().unwrap()]),
        ),
    );
    v.send(1, 10, request(3, "k", 1, best(0, 1)));
    v.drain();
    assert_eq!(
        held(&v, 2, "k", 0),
        Some(BookingStatus::Rejected(RejectReason::SeatsInSeveralParts))
    );
    assert_eq!(
        held(&v, 3, "k", 1),
        Some(BookingStatus::Rejected(RejectReason::SeatsInSeveralParts))
    );
    let free: usize = v.maps.iter().map(|m| m.counts().free).sum();
    assert_eq!(free, 32, "each part counts only its own seats");
}

#[test]
fn a_repeated_grant_for_a_booking_given_up_is_handed_back() {
    let mut v = Venue::new(2);
    v.send(1, 10, request(2, "k", 1, best(1, 2)));
    v.drain();
    let id = BookingId::for_request(buyer(2), "k", 1);
    // The home part forgot the quota record long after its release, then
    // a replayed question arrives: it grants again, and the part hands it
    // straight back, so the count ends where it should.
    v.send(
        1,
        20,
        CommandKind::CancelBooking {
            booking_id: id,
            buyer: buyer(2),
        },
    );
    v.drain();
    v.send(
        0,
        20 + REFUSAL_TTL_MS + 1,
        CommandKind::SetSale { open: true },
    );
    v.deliver(0);
    assert!(
        v.maps[0].booking(id).is_none(),
        "the released quota is forgotten after its TTL"
    );
    v.send(
        0,
        10,
        CommandKind::ReserveQuota {
            booking_id: id,
            buyer: buyer(2),
            seats: vec!["B-1-1".parse().unwrap(), "B-1-2".parse().unwrap()],
            from_part: 1,
        },
    );
    v.deliver(0);
    assert_eq!(v.counted_at_home(buyer(2)), 2);
    v.drain();
    assert_eq!(v.counted_at_home(buyer(2)), 0);
}

#[derive(Debug, Clone)]
enum Op {
    Request {
        buyer: u128,
        key: u8,
        section: usize,
        quantity: u16,
    },
    Seats {
        buyer: u128,
        key: u8,
        seats: Vec<(usize, u16)>,
    },
    Cancel {
        buyer: u128,
        key: u8,
        part: u16,
    },
    Confirm {
        buyer: u128,
        key: u8,
        part: u16,
    },
    Expire {
        buyer: u128,
        key: u8,
        part: u16,
    },
    Deliver {
        part: usize,
    },
    Replay {
        part: usize,
        back: usize,
    },
    Wait {
        ms: i64,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let who = 0u128..4;
    let key = 0u8..6;
    prop_oneof![
        3 => (who.clone(), key.clone(), 0usize..4, 1u16..=3)
            .prop_map(|(buyer, key, section, quantity)| Op::Request { buyer, key, section, quantity }),
        1 => (who.clone(), key.clone(), prop::collection::vec((0usize..4, 1u16..=4), 1..3))
            .prop_map(|(buyer, key, seats)| Op::Seats { buyer, key, seats }),
        1 => (who.clone(), key.clone(), 0u16..3).prop_map(|(buyer, key, part)| Op::Cancel { buyer, key, part }),
        1 => (who.clone(), key.clone(), 0u16..3).prop_map(|(buyer, key, part)| Op::Confirm { buyer, key, part }),
        1 => (who, key, 0u16..3).prop_map(|(buyer, key, part)| Op::Expire { buyer, key, part }),
        6 => (0usize..3).prop_map(|part| Op::Deliver { part }),
        1 => (0usize..3, 1usize..4).prop_map(|(part, back)| Op::Replay { part, back }),
        1 => (0i64..40_000).prop_map(|ms| Op::Wait { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// However the parts' commands interleave and whichever part replays,
    /// no buyer ever holds more than the limit over all parts, no seat is
    /// taken twice, and once everything is delivered nothing is left
    /// pending and every home part counts exactly the seats its buyers hold.
    #[test]
    fn the_buyer_limit_holds_across_parts(parts in 2u16..=3, ops in prop::collection::vec(arb_op(), 1..120)) {
        let mut v = Venue::new(parts);
        let s = spec(parts);
        let mut now = 1;
        let mut requested: HashSet<BookingId> = HashSet::new();
        for op in ops {
            now += 1;
            match op {
                Op::Request { buyer: n, key, section, quantity } => {
                    let key = key.to_string();
                    let part = s.part_of_section_index(section);
                    let kind = request(n, &key, part, best(section, quantity));
                    let id = kind.booking_id().unwrap();
                    requested.insert(id);
                    v.send(part, now, kind);
                }
                Op::Seats { buyer: n, key, seats } => {
                    // The same keys as best-available requests: cancels,
                    // confirms and expiries reach these too, and a key
                    // reused for another pick is refused.
                    let key = key.to_string();
                    let seats: Vec<SeatId> = seats
                        .iter()
                        .map(|(sec, num)| format!("{}-1-{num}", section(*sec)).parse().unwrap())
                        .collect();
                    // The API sends a pick to the part of its first seat.
                    let part = s.part_of_section(&seats[0].section).unwrap();
                    let kind = request(n, &key, part, Selection::Seats(seats));
                    let id = kind.booking_id().unwrap();
                    requested.insert(id);
                    v.send(part, now, kind);
                }
                Op::Cancel { buyer: n, key, part } | Op::Confirm { buyer: n, key, part } | Op::Expire { buyer: n, key, part } => {
                    // The API sends it to the part of the booking's seats.
                    let part = part % parts;
                    let id = BookingId::for_request(buyer(n), &key.to_string(), part);
                    if !requested.contains(&id) {
                        continue;
                    }
                    let kind = match op {
                        Op::Cancel { .. } => CommandKind::CancelBooking { booking_id: id, buyer: buyer(n) },
                        Op::Confirm { .. } => CommandKind::ConfirmBooking { booking_id: id, buyer: buyer(n), payment_reference: "p".into() },
                        _ => CommandKind::ExpireHold { booking_id: id },
                    };
                    v.send(part, now, kind);
                }
                Op::Deliver { part } => {
                    v.deliver(part % usize::from(parts));
                }
                Op::Replay { part, back } => v.replay(part % usize::from(parts), back),
                Op::Wait { ms } => now += ms,
            }
            for n in 0..4 {
                prop_assert!(v.seats_of(buyer(n)) <= usize::from(LIMIT), "buyer {n} over the limit");
            }
            for (p, m) in v.maps.iter().enumerate() {
                let rebuilt = SeatMap::from_parts(event(), s.clone(), p as u16, m.sale(), m.bookings().cloned());
                prop_assert_eq!(rebuilt.as_ref(), Ok(m), "part {} is not what its bookings say", p);
            }
        }
        v.drain();
        for m in &v.maps {
            prop_assert!(m.bookings().all(|b| b.status != BookingStatus::Pending), "a booking was left pending");
        }
        for n in 0..4 {
            prop_assert_eq!(v.counted_at_home(buyer(n)), v.seats_of(buyer(n)), "buyer {}'s home part counts wrong", n);
        }
        let answered: HashSet<BookingId> = v.outcomes.iter().filter_map(|o| match o {
            Outcome::Booking { booking_id, .. } => Some(*booking_id),
            _ => None,
        }).collect();
        for id in &requested {
            prop_assert!(answered.contains(id), "request {} never answered", id);
        }
    }
}
