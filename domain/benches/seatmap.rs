//! The seat-processor's pure work per command: best-available allocation on
//! a large section, and `SeatMap::apply` on a 10,000-seat event half sold.
//! Run: `cargo bench --workspace --bench seatmap` (results: bench/results/).

use std::hint::black_box;

use boxoffice_domain::allocation::best_available;
use boxoffice_domain::{
    BookingId, BuyerId, Command, CommandKind, EventId, EventSpec, SeatMap, Selection,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// `rows` rows of `seats` seats, each taken with probability `taken`.
fn section(rows: usize, seats: usize, taken: f64, rng: &mut StdRng) -> Vec<Vec<bool>> {
    (0..rows)
        .map(|_| (0..seats).map(|_| !rng.random_bool(taken)).collect())
        .collect()
}

fn allocation(c: &mut Criterion) {
    let mut group = c.benchmark_group("best_available 100x100 section");
    for taken in [0.0, 0.5, 0.95] {
        let rows = section(100, 100, taken, &mut StdRng::seed_from_u64(7));
        group.bench_function(format!("4 seats, {:.0}% taken", taken * 100.0), |b| {
            b.iter(|| best_available(black_box(&rows), 4))
        });
    }
    group.finish();
}

fn booking(n: u64) -> BookingId {
    BookingId(Uuid::from_u64_pair(1, n))
}

fn buyer(n: u64) -> BuyerId {
    BuyerId(Uuid::from_u64_pair(2, n))
}

fn request(n: u64, selection: Selection) -> Command {
    Command {
        at_ms: 1_000 + i64::try_from(n).unwrap_or(0),
        kind: CommandKind::RequestBooking {
            booking_id: booking(n),
            buyer: buyer(n),
            selection,
            fingerprint: format!("f{n}"),
        },
    }
}

/// A 10,000-seat event (4 sections of 25 rows of 100) with about half of
/// its seats held by 2-seat bookings, and the last booking made.
fn half_sold() -> (SeatMap, BookingId) {
    let spec = EventSpec::demo("Bench", 4, 25, 100, 0);
    let mut map = SeatMap::new(EventId(Uuid::from_u64_pair(3, 0)), spec);
    let mut last = booking(0);
    for n in 0..2_500 {
        let section = ["A", "B", "C", "D"][(n % 4) as usize].parse().unwrap();
        map.apply(&request(
            n,
            Selection::BestAvailable {
                section,
                quantity: 2,
            },
        ));
        last = booking(n);
    }
    (map, last)
}

fn apply(c: &mut Criterion) {
    let (map, held) = half_sold();
    let mut group = c.benchmark_group("SeatMap::apply, 10,000 seats half taken");
    let cases: Vec<(&str, Command)> = vec![
        (
            "best-available 4",
            request(
                10_000,
                Selection::BestAvailable {
                    section: "C".parse().unwrap(),
                    quantity: 4,
                },
            ),
        ),
        (
            "explicit 2 free",
            request(
                10_001,
                Selection::Seats(vec!["D-25-1".parse().unwrap(), "D-25-2".parse().unwrap()]),
            ),
        ),
        (
            "explicit 2 taken (refused)",
            request(
                10_002,
                Selection::Seats(vec!["A-1-50".parse().unwrap(), "A-1-51".parse().unwrap()]),
            ),
        ),
        (
            "confirm",
            Command {
                at_ms: 5_000,
                kind: CommandKind::ConfirmBooking {
                    booking_id: held,
                    buyer: buyer(2_499),
                    payment_reference: "pay-1".into(),
                },
            },
        ),
    ];
    for (name, command) in cases {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || map.clone(),
                |m| m.apply(black_box(&command)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, allocation, apply);
criterion_main!(benches);
