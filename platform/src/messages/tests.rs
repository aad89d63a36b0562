use apache_avro::schema_compatibility::SchemaCompatibility;
use boxoffice_domain::{BookingId, BuyerId, EventId, EventSpec, SeatMap};
use uuid::Uuid;

use super::*;

fn event() -> EventId {
    EventId(Uuid::from_u128(42))
}

/// An event with every optional part set, so each travels in a round trip.
fn spec() -> EventSpec {
    EventSpec {
        waiting_room: Some(boxoffice_domain::WaitingRoom {
            admissions_per_minute: 600,
            opens_minutes_before: 45,
            shopping_minutes: 12,
        }),
        ..EventSpec::demo("Round trip", 2, 3, 4, 1_000)
    }
}

fn commands() -> Vec<CommandKind> {
    let booking_id = BookingId(Uuid::from_u128(7));
    let buyer = BuyerId(Uuid::from_u128(9));
    vec![
        CommandKind::CreateEvent {
            spec: spec(),
            part: 0,
        },
        CommandKind::SetSale { open: true },
        CommandKind::RequestBooking {
            booking_id,
            buyer,
            selection: Selection::Seats(vec!["A-1-1".parse().unwrap(), "A-1-2".parse().unwrap()]),
            fingerprint: "f".into(),
        },
        CommandKind::RequestBooking {
            booking_id,
            buyer,
            selection: Selection::BestAvailable {
                section: "B".parse().unwrap(),
                quantity: 3,
            },
            fingerprint: "g".into(),
        },
        CommandKind::ConfirmBooking {
            booking_id,
            buyer,
            payment_reference: "pay".into(),
        },
        CommandKind::CancelBooking { booking_id, buyer },
        CommandKind::ExpireHold { booking_id },
    ]
}

/// The commands between the parts of an event (docs/event-partitioning.md).
fn part_commands() -> Vec<CommandKind> {
    let booking_id = BookingId(Uuid::from_u128(8));
    let buyer = BuyerId(Uuid::from_u128(9));
    let mut spec = spec();
    spec.parts = 2;
    vec![
        CommandKind::CreateEvent { spec, part: 1 },
        CommandKind::ReserveQuota {
            booking_id,
            buyer,
            seats: vec!["B-1-1".parse().unwrap()],
            from_part: 1,
        },
        CommandKind::QuotaAnswer {
            booking_id,
            buyer,
            granted: true,
        },
        CommandKind::ReleaseQuota { booking_id },
    ]
}

#[test]
fn every_command_round_trips() {
    for (i, kind) in commands().into_iter().chain(part_commands()).enumerate() {
        let c = CommandEnvelope {
            event_id: event(),
            reply_to: (i % 2 == 0).then(|| "api-1".to_owned()),
            command: Command {
                at_ms: 5 + i as i64,
                kind,
            },
        };
        let bytes = encode_command(&c);
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(decode_command(&bytes).unwrap(), c);
    }
}

#[test]
fn every_outcome_and_state_record_round_trips() {
    let mut map = None;
    let mut outcomes = vec![];
    let mut changes = vec![];
    for (i, kind) in commands().into_iter().enumerate() {
        let t = SeatMap::apply_to(
            &mut map,
            event(),
            &Command {
                at_ms: 2_000 + i as i64,
                kind,
            },
        );
        outcomes.extend(t.outcomes);
        changes.extend(t.changes);
    }
    // Retiring yields the retired event record and forgotten keys.
    changes.extend(map.as_mut().expect("the event was created").retire());
    outcomes.push(Outcome::EventRejected {
        reason: RejectReason::EventExists,
    });
    assert!(outcomes.iter().any(|o| matches!(o, Outcome::Booking { booking: Some(b), .. } if b.status == BookingStatus::Held)));
    for (seq, outcome) in outcomes.into_iter().enumerate() {
        let o = OutcomeEnvelope {
            event_id: event(),
            seq: seq as i64,
            at_ms: 3,
            reply_to: Some("api-2".into()),
            part: (seq % 3) as u16,
            outcome,
        };
        assert_eq!(decode_outcome(&encode_outcome(&o)).unwrap(), o);
    }
    let mut records: Vec<StateRecord> = changes
        .into_iter()
        .map(|c| StateRecord::of_change(event(), 5, c))
        .collect();
    records.push(StateRecord::Applied { offset: 77 });
    records.push(StateRecord::Forgotten { at_ms: 12 });
    // A part of an event, a pending booking and a home part's quota record.
    let mut in_parts = spec();
    in_parts.parts = 2;
    records.push(StateRecord::Event {
        event_id: event(),
        spec: in_parts,
        sale: SaleState::Open,
        retired: false,
        part: 1,
    });
    let pending = changes_of_booking(BookingStatus::Pending, None);
    records.push(StateRecord::Booking(pending));
    records.push(StateRecord::Booking(changes_of_booking(
        BookingStatus::Held,
        Some(1),
    )));
    assert!(records.len() > 5);
    for r in records {
        assert_eq!(decode_state(&encode_state(&r)).unwrap(), r);
    }
}

#[test]
fn garbage_is_refused_not_panicked_on() {
    for bad in [
        &b""[..],
        b"hello world",
        &[0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    ] {
        assert!(decode_command(bad).is_err());
        assert!(decode_outcome(bad).is_err());
        assert!(decode_state(bad).is_err());
    }
    let mut truncated = encode_command(&CommandEnvelope {
        event_id: event(),
        reply_to: None,
        command: Command {
            at_ms: 1,
            kind: CommandKind::SetSale { open: false },
        },
    });
    truncated.truncate(truncated.len() - 1);
    assert!(decode_command(&truncated).is_err());
}

/// Backward compatibility: a consumer with the current schema must read
/// everything written with any released schema. If this fails, the change
/// would break consumers reading old messages (or the changelog): make it
/// compatible (e.g. new fields with defaults), or release a new version.
#[test]
fn current_schemas_read_every_released_version() {
    let pairs = [
        (schemas::BOOKING_COMMAND, schemas::RELEASED_BOOKING_COMMAND),
        (schemas::BOOKING_EVENT, schemas::RELEASED_BOOKING_EVENT),
        (schemas::SEAT_CHANGELOG, schemas::RELEASED_SEAT_CHANGELOG),
    ];
    for (current, released) in pairs {
        let reader = Schema::parse_str(current).unwrap();
        for old in released {
            let writer = Schema::parse_str(old).unwrap();
            SchemaCompatibility::can_read(&writer, &reader).unwrap_or_else(|e| {
                panic!(
                    "{} cannot read released data: {e}",
                    reader.name().map(ToString::to_string).unwrap_or_default()
                )
            });
        }
    }
}

#[test]
fn the_compatibility_check_catches_a_breaking_change() {
    let old = Schema::parse_str(schemas::RELEASED_BOOKING_COMMAND[0]).unwrap();
    let breaking = schemas::BOOKING_COMMAND.replacen(
        r#"{"name": "at_ms", "type": "long""#,
        r#"{"name": "issued_by", "type": "string"}, {"name": "at_ms", "type": "long""#,
        1,
    );
    assert_ne!(
        breaking,
        schemas::BOOKING_COMMAND,
        "the test edit must apply"
    );
    let new = Schema::parse_str(&breaking).unwrap();
    assert!(
        SchemaCompatibility::can_read(&old, &new).is_err(),
        "a new field without default must be refused"
    );
}

#[test]
fn changelog_records_round_trip_with_epoch_batch_and_previous() {
    let booking = |status| Booking {
        id: BookingId(Uuid::from_u128(5)),
        event_id: event(),
        buyer: BuyerId(Uuid::from_u128(6)),
        seats: vec!["A-1-1".parse().unwrap()],
        status,
        hold_expires_at_ms: 10,
        total_cents: 100,
        fingerprint: "f".into(),
        payment_reference: None,
        updated_at_ms: 3,
        quota_of: None,
    };
    let seat = |status| StateRecord::Seat {
        event_id: event(),
        index: 3,
        status,
    };
    let held = SeatStatus::Held(BookingId(Uuid::from_u128(5)));
    let records = [
        (
            StateRecord::Claim {
                writer: "seat-1".into(),
            },
            None,
        ),
        (StateRecord::Applied { offset: -1 }, None),
        (seat(held), Some(seat(SeatStatus::Free))),
        (seat(SeatStatus::Free), None),
        (
            StateRecord::Booking(booking(BookingStatus::Confirmed)),
            Some(StateRecord::Booking(booking(BookingStatus::Held))),
        ),
        (
            StateRecord::Event {
                event_id: event(),
                spec: spec(),
                sale: SaleState::Closed,
                retired: true,
                part: 0,
            },
            Some(StateRecord::Event {
                event_id: event(),
                spec: spec(),
                sale: SaleState::Open,
                retired: false,
                part: 0,
            }),
        ),
        (
            StateRecord::Forgotten { at_ms: 7 },
            Some(seat(SeatStatus::Free)),
        ),
    ];
    for (i, (body, previous)) in records.into_iter().enumerate() {
        let r = ChangelogRecord {
            epoch: 40 + i as i64,
            batch: i as i64 - 1,
            body,
            previous,
        };
        assert_eq!(decode_changelog(&encode_changelog(&r)).unwrap(), r);
    }
}

/// A changelog written by the released v1 schema still decodes: outside any
/// epoch (-1), so a restore can recognise it and refuse to guess.
#[test]
fn released_changelog_records_decode_outside_any_epoch() {
    #[derive(Serialize)]
    struct V1 {
        body: WireStateBody,
    }
    let v1 = Codec::new(schemas::RELEASED_SEAT_CHANGELOG[0], &[]);
    let bytes = v1.encode(&V1 {
        body: WireStateBody::AppliedOffset(WireAppliedOffset { applied_offset: 9 }),
    });
    let r = decode_changelog(&bytes).unwrap();
    assert_eq!(r.body, StateRecord::Applied { offset: 9 });
    assert_eq!((r.epoch, r.batch, r.previous), (-1, -1, None));
}

#[test]
fn messages_from_a_newer_schema_are_told_apart_from_garbage() {
    let mut newer = encode_command(&CommandEnvelope {
        event_id: event(),
        reply_to: None,
        command: Command {
            at_ms: 1,
            kind: CommandKind::SetSale { open: true },
        },
    });
    assert!(!command_from_newer_schema(&newer));
    newer[2] ^= 0xff;
    assert!(command_from_newer_schema(&newer));
    assert!(!command_from_newer_schema(b"not avro at all"));
    assert!(!outcome_from_newer_schema(b""));
}

fn set_sale() -> CommandEnvelope {
    CommandEnvelope {
        event_id: event(),
        reply_to: Some("api-1".into()),
        command: Command {
            at_ms: 3,
            kind: CommandKind::SetSale { open: true },
        },
    }
}

/// A codec of its own per test: the process-wide ones switch framing once,
/// for good.
fn command_codec_with_registry(id: u32, known: &[(u32, &str)]) -> Codec {
    let codec = Codec::new(schemas::BOOKING_COMMAND, schemas::RELEASED_BOOKING_COMMAND);
    codec.use_registry(id, known).unwrap();
    codec
}

#[test]
fn registry_framing_is_a_zero_byte_the_schema_id_and_the_datum() {
    let plain = Codec::new(schemas::BOOKING_COMMAND, schemas::RELEASED_BOOKING_COMMAND);
    let framed = command_codec_with_registry(0x0102_0304, &[]);
    let wire = WireCommand::from(&set_sale());
    let single = plain.encode(&wire);
    let registry = framed.encode(&wire);
    assert_eq!(registry[..5], [0, 1, 2, 3, 4]);
    // The same Avro datum after either header.
    assert_eq!(registry[5..], single[10..]);
    let back: WireCommand = framed.decode(&registry).unwrap();
    assert_eq!(CommandEnvelope::try_from(back).unwrap(), set_sale());
    // A registry-configured reader still reads self-describing messages
    // (written before the switch); one without a registry refuses the
    // framed ones as from an unknown schema, never as garbage.
    let back: WireCommand = framed.decode(&single).unwrap();
    assert_eq!(CommandEnvelope::try_from(back).unwrap(), set_sale());
    assert!(matches!(
        plain.decode::<WireCommand>(&registry),
        Err(DecodeError::UnknownSchema(_))
    ));
    assert!(plain.is_unknown_schema(&registry));
}

/// Records written under an earlier registered id (an older version's
/// schema, or the same schema under another subject) are read with the
/// schema the registry lists for that id. Reading released schemas with the
/// current one is `current_schemas_read_every_released_version`.
#[test]
fn registry_framed_messages_of_earlier_registered_ids_are_read() {
    let earlier = command_codec_with_registry(7, &[]);
    let bytes = earlier.encode(&WireCommand::from(&set_sale()));
    assert_eq!(bytes[..5], [0, 0, 0, 0, 7]);
    let current = command_codec_with_registry(
        9,
        &[(7, schemas::BOOKING_COMMAND), (9, schemas::BOOKING_COMMAND)],
    );
    let back: WireCommand = current.decode(&bytes).unwrap();
    assert_eq!(CommandEnvelope::try_from(back).unwrap(), set_sale());
    // An id above every one the registry listed may be a newer version's;
    // an unlisted one below is garbage, dead-lettered, not held.
    assert!(current.is_unknown_schema(&[0, 0, 0, 0, 10, 1, 2]));
    assert!(!current.is_unknown_schema(&[0, 0, 0, 0, 8, 1, 2]));
    assert!(matches!(
        current.decode::<WireCommand>(&[0, 0, 0, 0, 8, 1, 2]),
        Err(DecodeError::Header)
    ));
    assert!(!current.is_unknown_schema(b"\x01garbage"));
    assert!(matches!(
        current.decode::<WireCommand>(&[0, 0, 0]),
        Err(DecodeError::Header)
    ));
}

/// A schema a newer version registered before this instance started (a
/// restart mid-rollout) is listed by the registry, but this version cannot
/// read it: its messages are held as from a newer schema.
#[test]
fn ids_of_schemas_this_version_cannot_read_count_as_newer() {
    let newer = r#"{"type": "record", "name": "Newer", "fields": [{"name": "x", "type": "long"}]}"#;
    let current = command_codec_with_registry(3, &[(3, schemas::BOOKING_COMMAND), (5, newer)]);
    assert!(current.is_unknown_schema(&[0, 0, 0, 0, 5, 1, 2]));
    assert!(matches!(
        current.decode::<WireCommand>(&[0, 0, 0, 0, 5, 1, 2]),
        Err(DecodeError::UnknownSchema(_))
    ));
}

#[test]
fn a_codec_keeps_the_registry_id_it_started_with() {
    let codec = command_codec_with_registry(5, &[]);
    assert!(codec.use_registry(5, &[]).is_ok());
    assert!(codec.use_registry(6, &[]).is_err());
    assert!(codec.use_registry(1, &[(1, "not a schema")]).is_err());
}

#[test]
fn local_state_stays_self_describing_whatever_the_framing() {
    let record = StateRecord::Applied { offset: 9 };
    let bytes = encode_state(&record);
    assert_eq!(bytes[..2], SINGLE_OBJECT);
    assert_eq!(decode_state(&bytes).unwrap(), record);
}

/// A booking of the test event in `status`, a quota record when `quota_of`.
fn changes_of_booking(status: BookingStatus, quota_of: Option<u16>) -> Booking {
    Booking {
        id: BookingId(Uuid::from_u128(11)),
        event_id: event(),
        buyer: BuyerId(Uuid::from_u128(9)),
        seats: vec!["B-1-2".parse().unwrap()],
        status,
        hold_expires_at_ms: 9_000,
        total_cents: 100,
        fingerprint: "f".into(),
        payment_reference: None,
        updated_at_ms: 5,
        quota_of,
    }
}

/// Every message kind, encoded: what the property tests below break.
fn valid_messages() -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = commands()
        .into_iter()
        .chain(part_commands())
        .map(|kind| {
            (
                "command",
                encode_command(&CommandEnvelope {
                    event_id: event(),
                    reply_to: Some("api-1".into()),
                    command: Command { at_ms: 5, kind },
                }),
            )
        })
        .collect();
    let mut map = None;
    for (i, kind) in commands().into_iter().enumerate() {
        let t = SeatMap::apply_to(
            &mut map,
            event(),
            &Command {
                at_ms: 2_000 + i as i64,
                kind,
            },
        );
        for (seq, outcome) in t.outcomes.into_iter().enumerate() {
            out.push((
                "outcome",
                encode_outcome(&OutcomeEnvelope {
                    event_id: event(),
                    seq: seq as i64,
                    at_ms: 3,
                    reply_to: Some("api-2".into()),
                    part: 0,
                    outcome,
                }),
            ));
        }
        for change in t.changes {
            out.push((
                "state",
                encode_changelog(&ChangelogRecord {
                    epoch: 2,
                    batch: 9,
                    body: StateRecord::of_change(event(), 5, change),
                    previous: None,
                }),
            ));
        }
    }
    out
}

/// Decodes `bytes` as the kind it was written as; any answer but a panic.
fn decode_as(kind: &str, bytes: &[u8]) {
    match kind {
        "command" => {
            let _ = decode_command(bytes);
        }
        "outcome" => {
            let _ = decode_outcome(bytes);
        }
        _ => {
            let _ = decode_changelog(bytes);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// A malformed message never crashes a processor: valid messages with
    /// bytes changed, cut short or grown, and bytes behind a valid header,
    /// are refused (or read), never panicked on.
    #[test]
    fn broken_messages_are_refused_never_panicked_on(
        which in 0usize..64,
        edits in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8),
        cut in proptest::option::of(0usize..4096),
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
    ) {
        let messages = valid_messages();
        let (kind, original) = &messages[which % messages.len()];
        let mut bytes = original.clone();
        for (at, byte) in &edits {
            let i = at % bytes.len();
            bytes[i] = *byte;
        }
        if let Some(c) = cut {
            bytes.truncate(c % (bytes.len() + 1));
        }
        decode_as(kind, &bytes);
        bytes.extend_from_slice(&tail);
        decode_as(kind, &bytes);
        // A valid header (marker and fingerprint), then noise.
        let mut behind_header = original[..10.min(original.len())].to_vec();
        behind_header.extend_from_slice(&tail);
        decode_as(kind, &behind_header);
    }
}

#[test]
fn a_length_no_message_could_have_is_refused_before_it_is_allocated() {
    // The header of a valid command, then an event id claiming 100 MB.
    let valid = encode_command(&CommandEnvelope {
        event_id: event(),
        reply_to: None,
        command: Command {
            at_ms: 1,
            kind: CommandKind::SetSale { open: false },
        },
    });
    let mut bytes = valid[..10].to_vec();
    let mut n: u64 = 2 * 100_000_000; // zig-zag of 100,000,000
    while n >= 0x80 {
        bytes.push(u8::try_from(n & 0x7F).unwrap() | 0x80);
        n >>= 7;
    }
    bytes.push(u8::try_from(n).unwrap());
    bytes.extend_from_slice(b"short");
    let err = decode_command(&bytes).expect_err("refused").to_string();
    assert!(
        err.contains("allocate") && err.contains(&MAX_DECODE_ALLOCATION.to_string()),
        "refused for its size, not after reading: {err}"
    );
}
