//! The Avro codecs of the pipeline's messages, per message: a booking
//! request (API -> seat-processor), its outcome (-> reservation-processor)
//! and its changelog record. Run: `cargo bench --workspace --bench codecs`.

use std::hint::black_box;

use boxoffice_domain::{
    BookingId, BuyerId, Command, CommandKind, EventId, EventSpec, Outcome, SeatMap, Selection,
    StateChange,
};
use boxoffice_platform::messages::{
    ChangelogRecord, CommandEnvelope, OutcomeEnvelope, StateRecord, decode_changelog,
    decode_command, decode_outcome, encode_changelog, encode_command, encode_outcome,
};
use criterion::{Criterion, criterion_group, criterion_main};
use uuid::Uuid;

/// A 4-seat best-available request, its outcome and its changelog record,
/// as one sale would produce them.
fn messages() -> (CommandEnvelope, OutcomeEnvelope, ChangelogRecord) {
    let event_id = EventId(Uuid::from_u128(1));
    let spec = EventSpec::demo("Bench", 4, 25, 100, 0);
    let mut map = SeatMap::new(event_id, spec);
    let command = Command {
        at_ms: 1_000,
        kind: CommandKind::RequestBooking {
            booking_id: BookingId(Uuid::from_u128(2)),
            buyer: BuyerId(Uuid::from_u128(3)),
            selection: Selection::BestAvailable {
                section: "B".parse().expect("a section code"),
                quantity: 4,
            },
            fingerprint: "5d41402abc4b2a76b9719d911017c592".into(),
        },
    };
    let transition = map.apply(&command);
    let outcome: Outcome = transition.outcomes[0].clone();
    let Some(StateChange::Booking(booking)) = transition.changes.last().cloned() else {
        panic!("a hold changes its booking");
    };
    (
        CommandEnvelope {
            event_id,
            reply_to: Some("api-7f9c".into()),
            command,
        },
        OutcomeEnvelope {
            event_id,
            seq: 123_456,
            at_ms: 1_000,
            reply_to: Some("api-7f9c".into()),
            part: 0,
            outcome,
        },
        ChangelogRecord {
            epoch: 42,
            batch: 123_456,
            body: StateRecord::Booking(booking),
            previous: None,
        },
    )
}

fn codecs(c: &mut Criterion) {
    let (command, outcome, record) = messages();
    let mut group = c.benchmark_group("avro");
    let bytes = encode_command(&command);
    group.bench_function(format!("encode command ({} B)", bytes.len()), |b| {
        b.iter(|| encode_command(black_box(&command)))
    });
    group.bench_function("decode command", |b| {
        b.iter(|| decode_command(black_box(&bytes)))
    });
    let bytes = encode_outcome(&outcome);
    group.bench_function(format!("encode outcome ({} B)", bytes.len()), |b| {
        b.iter(|| encode_outcome(black_box(&outcome)))
    });
    group.bench_function("decode outcome", |b| {
        b.iter(|| decode_outcome(black_box(&bytes)))
    });
    let bytes = encode_changelog(&record);
    group.bench_function(
        format!("encode changelog record ({} B)", bytes.len()),
        |b| b.iter(|| encode_changelog(black_box(&record))),
    );
    group.bench_function("decode changelog record", |b| {
        b.iter(|| decode_changelog(black_box(&bytes)))
    });
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
