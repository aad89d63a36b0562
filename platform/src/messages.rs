//! The wire format of every Kafka message: Avro, with the schemas in
//! `schemas/*.avsc`.
//!
//! Each value is Avro single-object encoded (`C3 01`, the 8-byte Rabin
//! fingerprint of the writer's schema, then the datum), so a reader knows which
//! schema wrote it and resolves it against its own: old messages stay readable
//! after a compatible schema change. The wire types here are private mirrors
//! of the schemas; the rest of the code only sees domain types.

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use boxoffice_domain::{
    Booking, BookingId, BookingStatus, BuyerId, Command, CommandKind, EventId, EventSpec, Outcome,
    PriceCategory, RejectReason, Row, SaleState, SeatId, SeatStatus, Section, Selection,
    StateChange, VenueLayout, WaitingRoom,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("neither an Avro single-object message nor a schema-registry framed one")]
    Header,
    #[error("written with an unknown schema ({0})")]
    UnknownSchema(String),
    #[error("avro: {0}")]
    Avro(String),
    #[error("invalid field {0}: {1}")]
    Field(&'static str, String),
}

/// The schema-registry framing of one topic's messages: the id this version
/// writes with, and every schema registered under the subject by id.
struct Framing {
    id: u32,
    writers: Vec<(u32, Schema)>,
    /// Every id the registry listed under the subject at start (and `id`).
    listed: Vec<u32>,
}

impl Framing {
    /// Whether an id this version cannot read may be a newer version's
    /// schema: one the registry listed with a schema this version does not
    /// know, or one above every listed id (the registry hands out ids in
    /// increasing order). Any other id is not one of this topic's schemas,
    /// so its message is garbage.
    fn may_be_newer(&self, id: u32) -> bool {
        self.listed.contains(&id) || self.listed.iter().all(|l| id > *l)
    }
}

struct Codec {
    current: Schema,
    fingerprint: [u8; 8],
    writers: Vec<([u8; 8], Schema)>,
    /// Set once at start when a schema registry is configured
    /// ([`crate::registry`]): messages are then written with its framing.
    registry: OnceLock<Framing>,
}

/// Avro single-object encoding: a 2-byte marker, then the schema's Rabin fingerprint.
const SINGLE_OBJECT: [u8; 2] = [0xC3, 0x01];
/// The registry serializers' framing: a zero byte, then a 4-byte schema id.
const REGISTRY_MAGIC: u8 = 0;

/// The most an Avro length or count in a message may claim (bytes). Left to
/// its default, apache-avro would allocate up to 512 MiB for whatever a
/// 20-byte message claims; no message here comes near 1 MiB (the broker's
/// own limit), so a larger claim is garbage and is refused before any
/// allocation.
pub const MAX_DECODE_ALLOCATION: usize = 8 << 20;

impl Codec {
    fn new(current: &str, released: &[&str]) -> Self {
        // Process-wide, set once, before any codec decodes.
        apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION);
        let parse = |s: &str| Schema::parse_str(s).expect("committed schemas parse");
        let current = parse(current);
        let fingerprint = fingerprint(&current);
        let mut writers = vec![(fingerprint, current.clone())];
        for r in released {
            let s = parse(r);
            writers.push((self::fingerprint(&s), s));
        }
        Self {
            current,
            fingerprint,
            writers,
            registry: OnceLock::new(),
        }
    }

    /// Writes with the registry's framing from now on: `id` is the current
    /// schema's, `known` every schema registered under the subject.
    ///
    /// Only ids whose schema is the current one or a released one are read:
    /// an id registered by a newer version (a pod restarted mid-rollout, or
    /// after a rollback) stays unknown, so its messages count as from a
    /// newer schema (held, never dead-lettered), exactly as self-describing
    /// ones from a fingerprint this version does not know.
    fn use_registry(&self, id: u32, known: &[(u32, &str)]) -> Result<(), DecodeError> {
        let mut writers = vec![(id, self.current.clone())];
        let mut listed = vec![id];
        for (i, text) in known {
            let schema = Schema::parse_str(text).map_err(|e| DecodeError::Avro(e.to_string()))?;
            listed.push(*i);
            let fp = fingerprint(&schema);
            if self.writers.iter().any(|(f, _)| *f == fp) {
                writers.push((*i, schema));
            }
        }
        let framing = Framing {
            id,
            writers,
            listed,
        };
        match self.registry.set(framing) {
            Ok(()) => Ok(()),
            Err(_) if self.registry.get().is_some_and(|f| f.id == id) => Ok(()),
            Err(_) => Err(DecodeError::UnknownSchema(format!(
                "registry id {id}, after another id was in use"
            ))),
        }
    }

    fn encode<T: Serialize>(&self, value: &T) -> Vec<u8> {
        self.encode_framed(value, self.registry.get())
    }

    /// `framing` None: self-describing (single-object encoding).
    fn encode_framed<T: Serialize>(&self, value: &T, framing: Option<&Framing>) -> Vec<u8> {
        let writer = GenericDatumWriter::builder(&self.current)
            .build()
            .expect("schema resolves");
        let datum = writer
            .write_ser_to_vec(value)
            .expect("wire types match their schema");
        let mut out = Vec::with_capacity(10 + datum.len());
        match framing {
            Some(framing) => {
                out.push(REGISTRY_MAGIC);
                out.extend_from_slice(&framing.id.to_be_bytes());
            }
            None => {
                out.extend_from_slice(&SINGLE_OBJECT);
                out.extend_from_slice(&self.fingerprint);
            }
        }
        out.extend_from_slice(&datum);
        out
    }

    /// The schema a message was written with, and its datum.
    fn writer_of<'a>(&self, bytes: &'a [u8]) -> Result<(&Schema, &'a [u8]), DecodeError> {
        match bytes {
            [0xC3, 0x01, rest @ ..] if rest.len() >= 8 => {
                let (fp, datum) = rest.split_at(8);
                self.writers
                    .iter()
                    .find(|(f, _)| f[..] == *fp)
                    .map(|(_, s)| (s, datum))
                    .ok_or_else(|| DecodeError::UnknownSchema(format!("fingerprint {}", hex(fp))))
            }
            [REGISTRY_MAGIC, a, b, c, d, datum @ ..] => {
                let id = u32::from_be_bytes([*a, *b, *c, *d]);
                let Some(framing) = self.registry.get() else {
                    // Framed by a writer with a registry while this instance
                    // has none: held until it is configured alike.
                    return Err(DecodeError::UnknownSchema(format!("registry id {id}")));
                };
                match framing.writers.iter().find(|(i, _)| *i == id) {
                    Some((_, s)) => Ok((s, datum)),
                    None if framing.may_be_newer(id) => {
                        Err(DecodeError::UnknownSchema(format!("registry id {id}")))
                    }
                    None => Err(DecodeError::Header),
                }
            }
            _ => Err(DecodeError::Header),
        }
    }

    fn is_unknown_schema(&self, bytes: &[u8]) -> bool {
        matches!(self.writer_of(bytes), Err(DecodeError::UnknownSchema(_)))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        let (writer, mut datum) = self.writer_of(bytes)?;
        let reader = GenericDatumReader::builder(writer)
            .reader_schema(&self.current)
            .build()
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
        let value = reader
            .read_value(&mut datum)
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
        apache_avro::from_value(&value).map_err(|e| DecodeError::Avro(e.to_string()))
    }
}

fn fingerprint(schema: &Schema) -> [u8; 8] {
    let fp = schema.fingerprint::<Rabin>();
    fp.bytes
        .as_slice()
        .try_into()
        .expect("Rabin fingerprints are 8 bytes")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The schemas as committed, current and released.
pub mod schemas {
    pub const BOOKING_COMMAND: &str = include_str!("../../schemas/booking_command.avsc");
    pub const BOOKING_EVENT: &str = include_str!("../../schemas/booking_event.avsc");
    pub const SEAT_CHANGELOG: &str = include_str!("../../schemas/seat_changelog.avsc");
    pub const RELEASED_BOOKING_COMMAND: &[&str] = &[
        include_str!("../../schemas/released/v1/booking_command.avsc"),
        include_str!("../../schemas/released/v2/booking_command.avsc"),
        include_str!("../../schemas/released/v3/booking_command.avsc"),
    ];
    pub const RELEASED_BOOKING_EVENT: &[&str] = &[
        include_str!("../../schemas/released/v1/booking_event.avsc"),
        include_str!("../../schemas/released/v2/booking_event.avsc"),
        include_str!("../../schemas/released/v3/booking_event.avsc"),
    ];
    pub const RELEASED_SEAT_CHANGELOG: &[&str] = &[
        include_str!("../../schemas/released/v1/seat_changelog.avsc"),
        include_str!("../../schemas/released/v2/seat_changelog.avsc"),
        include_str!("../../schemas/released/v3/seat_changelog.avsc"),
        include_str!("../../schemas/released/v4/seat_changelog.avsc"),
        include_str!("../../schemas/released/v5/seat_changelog.avsc"),
    ];
}

fn command_codec() -> &'static Codec {
    static C: OnceLock<Codec> = OnceLock::new();
    C.get_or_init(|| Codec::new(schemas::BOOKING_COMMAND, schemas::RELEASED_BOOKING_COMMAND))
}

fn event_codec() -> &'static Codec {
    static C: OnceLock<Codec> = OnceLock::new();
    C.get_or_init(|| Codec::new(schemas::BOOKING_EVENT, schemas::RELEASED_BOOKING_EVENT))
}

fn changelog_codec() -> &'static Codec {
    static C: OnceLock<Codec> = OnceLock::new();
    C.get_or_init(|| Codec::new(schemas::SEAT_CHANGELOG, schemas::RELEASED_SEAT_CHANGELOG))
}

/// The kinds of message, one schema (and one topic) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `booking-commands`
    Command,
    /// `booking-events`
    Outcome,
    /// `seat-changelog`
    Changelog,
}

fn codec(kind: Kind) -> &'static Codec {
    match kind {
        Kind::Command => command_codec(),
        Kind::Outcome => event_codec(),
        Kind::Changelog => changelog_codec(),
    }
}

/// The schema this version writes `kind` with (schemas/*.avsc).
pub fn current_schema(kind: Kind) -> &'static str {
    match kind {
        Kind::Command => schemas::BOOKING_COMMAND,
        Kind::Outcome => schemas::BOOKING_EVENT,
        Kind::Changelog => schemas::SEAT_CHANGELOG,
    }
}

/// From now on, `kind` is written framed for the schema registry with
/// `id`, and read from every schema registered under its subject
/// (`known`: id and schema). Set once per process ([`crate::registry`]).
pub fn use_registry(
    kind: Kind,
    id: u32,
    known: &[crate::registry::Registered],
) -> Result<(), DecodeError> {
    let known: Vec<(u32, &str)> = known.iter().map(|r| (r.id, r.schema.as_str())).collect();
    codec(kind).use_registry(id, &known)
}

// ---------- public envelopes ----------

/// A command on `booking-commands`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandEnvelope {
    pub event_id: EventId,
    /// The API instance waiting for the outcome, if any.
    pub reply_to: Option<String>,
    pub command: Command,
}

/// An outcome on `booking-events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeEnvelope {
    pub event_id: EventId,
    /// Offset of the answered command in its partition; orders outcomes.
    pub seq: i64,
    pub at_ms: i64,
    pub reply_to: Option<String>,
    /// Which part of the event decided it (docs/event-partitioning.md).
    pub part: u16,
    pub outcome: Outcome,
}

/// One record of the seat-processor's changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecord {
    Event {
        event_id: EventId,
        spec: EventSpec,
        sale: SaleState,
        /// Retired: its seats and bookings are gone, every command refused.
        retired: bool,
        /// Which part of the event this partition decides.
        part: u16,
    },
    /// One seat, as changelog layouts before v4 wrote it. Seats are derived
    /// from the bookings now (docs/seat-state-protocol.md): a restore reads
    /// and ignores these records, and nothing writes them.
    Seat {
        event_id: EventId,
        index: u32,
        status: SeatStatus,
    },
    Booking(Booking),
    /// The writer's records reflect every command up to this offset (-1:
    /// none yet).
    Applied {
        offset: i64,
    },
    /// A writer opening an ownership epoch (docs/seat-state-protocol.md).
    Claim {
        writer: String,
    },
    /// The key no longer exists (an expired refusal, a retired event's
    /// bookings); forgotten by the command at `at_ms`.
    Forgotten {
        at_ms: i64,
    },
}

impl StateRecord {
    /// The record a change of `event_id`'s state is stored as; `at_ms` is
    /// the time of the command that made it.
    pub fn of_change(event_id: EventId, at_ms: i64, change: StateChange) -> Self {
        match change {
            StateChange::Event {
                spec,
                sale,
                retired,
                part,
            } => Self::Event {
                event_id,
                spec,
                sale,
                retired,
                part,
            },
            StateChange::Booking(b) => Self::Booking(b),
            StateChange::Forgotten(_) => Self::Forgotten { at_ms },
        }
    }
}

/// A [`StateRecord`] as written on the changelog: in the namespace of the
/// ownership epoch that wrote it, after which command, and what it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// The writer's ownership epoch: the changelog offset of its claim; -1
    /// for records written before epochs existed (and in RocksDB).
    pub epoch: i64,
    /// The last command offset of the batch that wrote it (-1: before any).
    pub batch: i64,
    pub body: StateRecord,
    /// The value as of the epoch's previous marker, for a restore that finds
    /// this record's batch without its marker; `None` when there was none.
    pub previous: Option<StateRecord>,
}

pub fn encode_command(c: &CommandEnvelope) -> Vec<u8> {
    command_codec().encode(&WireCommand::from(c))
}

pub fn decode_command(bytes: &[u8]) -> Result<CommandEnvelope, DecodeError> {
    command_codec().decode::<WireCommand>(bytes)?.try_into()
}

/// Whether a command was written with a schema newer than this version's.
pub fn command_from_newer_schema(bytes: &[u8]) -> bool {
    command_codec().is_unknown_schema(bytes)
}

/// Whether an outcome was written with a schema newer than this version's.
pub fn outcome_from_newer_schema(bytes: &[u8]) -> bool {
    event_codec().is_unknown_schema(bytes)
}

pub fn encode_outcome(o: &OutcomeEnvelope) -> Vec<u8> {
    event_codec().encode(&WireEvent::from(o))
}

pub fn decode_outcome(bytes: &[u8]) -> Result<OutcomeEnvelope, DecodeError> {
    event_codec().decode::<WireEvent>(bytes)?.try_into()
}

/// A state record outside any epoch (the seat-processor's RocksDB values).
/// Always self-describing, registry or not: the local state must stay
/// readable whatever registry the instance is started with later.
pub fn encode_state(r: &StateRecord) -> Vec<u8> {
    let record = ChangelogRecord {
        epoch: -1,
        batch: -1,
        body: r.clone(),
        previous: None,
    };
    changelog_codec().encode_framed(&WireState::from(&record), None)
}

pub fn decode_state(bytes: &[u8]) -> Result<StateRecord, DecodeError> {
    Ok(decode_changelog(bytes)?.body)
}

pub fn encode_changelog(r: &ChangelogRecord) -> Vec<u8> {
    changelog_codec().encode(&WireState::from(r))
}

pub fn decode_changelog(bytes: &[u8]) -> Result<ChangelogRecord, DecodeError> {
    changelog_codec().decode::<WireState>(bytes)?.try_into()
}

// ---------- wire types (field names and variant order follow the .avsc files) ----------

#[derive(Serialize, Deserialize)]
struct WireCommand {
    event_id: String,
    at_ms: i64,
    reply_to: Option<String>,
    body: WireCommandBody,
}

#[derive(Serialize, Deserialize)]
enum WireCommandBody {
    CreateEvent(WireCreateEvent),
    SetSale(WireSetSale),
    RequestBooking(WireRequestBooking),
    ConfirmBooking(WireConfirmBooking),
    CancelBooking(WireCancelBooking),
    ExpireHold(WireExpireHold),
    ReserveQuota(WireReserveQuota),
    QuotaAnswer(WireQuotaAnswer),
    ReleaseQuota(WireReleaseQuota),
}

#[derive(Serialize, Deserialize)]
struct WireCreateEvent {
    spec: WireSpec,
    #[serde(default)]
    part: i32,
}

#[derive(Serialize, Deserialize)]
struct WireReserveQuota {
    quota_booking_id: String,
    quota_buyer_id: String,
    quota_seats: Vec<String>,
    from_part: i32,
}

/// Avro resolves a union value to the first branch whose fields it has, so
/// the new commands' field names differ from every earlier branch's (a
/// `booking_id` + `buyer_id` record would read as `CancelBooking`).
#[derive(Serialize, Deserialize)]
struct WireQuotaAnswer {
    answered_booking_id: String,
    answered_buyer_id: String,
    granted: bool,
}

#[derive(Serialize, Deserialize)]
struct WireReleaseQuota {
    released_booking_id: String,
}

#[derive(Serialize, Deserialize)]
struct WireSpec {
    name: String,
    starts_at_ms: i64,
    sale_opens_at_ms: i64,
    sale_closes_at_ms: i64,
    venue_name: String,
    sections: Vec<WireSection>,
    price_categories: Vec<WirePriceCategory>,
    max_seats_per_buyer: i32,
    hold_duration_ms: i64,
    #[serde(default = "one_part")]
    parts: i32,
    #[serde(default)]
    organizer_id: Option<String>,
    #[serde(default)]
    waiting_room: Option<WireWaitingRoom>,
}

#[derive(Serialize, Deserialize)]
struct WireWaitingRoom {
    admissions_per_minute: i32,
    opens_minutes_before: i32,
    shopping_minutes: i32,
}

fn one_part() -> i32 {
    1
}

#[derive(Serialize, Deserialize)]
struct WireSection {
    code: String,
    name: String,
    price_category: String,
    rows: Vec<WireRow>,
}

#[derive(Serialize, Deserialize)]
struct WireRow {
    label: String,
    seats: i32,
}

#[derive(Serialize, Deserialize)]
struct WirePriceCategory {
    code: String,
    name: String,
    price_cents: i64,
    currency: String,
}

#[derive(Serialize, Deserialize)]
struct WireSetSale {
    open: bool,
}

#[derive(Serialize, Deserialize)]
struct WireRequestBooking {
    booking_id: String,
    buyer_id: String,
    selection: WireSelection,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
enum WireSelection {
    ExplicitSeats(WireExplicitSeats),
    BestAvailable(WireBestAvailable),
}

#[derive(Serialize, Deserialize)]
struct WireExplicitSeats {
    seats: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct WireBestAvailable {
    section: String,
    quantity: i32,
}

#[derive(Serialize, Deserialize)]
struct WireConfirmBooking {
    booking_id: String,
    buyer_id: String,
    payment_reference: String,
}

#[derive(Serialize, Deserialize)]
struct WireCancelBooking {
    booking_id: String,
    buyer_id: String,
}

#[derive(Serialize, Deserialize)]
struct WireExpireHold {
    booking_id: String,
}

#[derive(Serialize, Deserialize)]
struct WireEvent {
    event_id: String,
    seq: i64,
    at_ms: i64,
    reply_to: Option<String>,
    body: WireEventBody,
    #[serde(default)]
    part: i32,
}

#[derive(Serialize, Deserialize)]
enum WireEventBody {
    EventCreated(WireEventCreated),
    SaleChanged(WireSaleChanged),
    EventRejected(WireEventRejected),
    BookingOutcome(WireBookingOutcome),
}

#[derive(Serialize, Deserialize)]
struct WireEventCreated {
    spec: WireSpec,
    sale: SaleState,
}

#[derive(Serialize, Deserialize)]
struct WireSaleChanged {
    sale: SaleState,
}

#[derive(Serialize, Deserialize)]
struct WireEventRejected {
    reason: RejectReason,
}

#[derive(Serialize, Deserialize)]
struct WireBookingOutcome {
    booking_id: String,
    booking: Option<WireBooking>,
    rejection: Option<RejectReason>,
}

#[derive(Serialize, Deserialize)]
enum WireBookingStatus {
    Held,
    Confirmed,
    Cancelled,
    Expired,
    Rejected,
    Pending,
}

#[derive(Serialize, Deserialize)]
struct WireBooking {
    booking_id: String,
    event_id: String,
    buyer_id: String,
    seats: Vec<String>,
    status: WireBookingStatus,
    reject_reason: Option<RejectReason>,
    hold_expires_at_ms: i64,
    total_cents: i64,
    fingerprint: String,
    payment_reference: Option<String>,
    updated_at_ms: i64,
    #[serde(default)]
    quota_of: Option<i32>,
}

#[derive(Serialize, Deserialize)]
struct WireState {
    body: WireStateBody,
    epoch: i64,
    batch: i64,
    previous: WirePrevious,
}

#[derive(Serialize, Deserialize)]
enum WireStateBody {
    EventState(WireEventState),
    SeatState(WireSeatState),
    BookingState(WireBookingState),
    AppliedOffset(WireAppliedOffset),
    OwnerClaim(WireOwnerClaim),
    Forgotten(WireForgotten),
}

/// `previous`: null or one of the state bodies (an Avro union cannot nest
/// in an `Option`, so null is a variant of its own).
#[derive(Serialize, Deserialize)]
enum WirePrevious {
    None,
    EventState(WireEventState),
    SeatState(WireSeatState),
    BookingState(WireBookingState),
}

#[derive(Serialize, Deserialize)]
struct WireOwnerClaim {
    writer: String,
}

#[derive(Serialize, Deserialize)]
struct WireEventState {
    event_id: String,
    spec: WireSpec,
    sale: SaleState,
    #[serde(default)]
    retired: bool,
    #[serde(default)]
    part: i32,
}

#[derive(Serialize, Deserialize)]
struct WireForgotten {
    at_ms: i64,
}

#[derive(Serialize, Deserialize)]
enum WireSeatStatusKind {
    Free,
    Held,
    Sold,
}

#[derive(Serialize, Deserialize)]
struct WireSeatState {
    event_id: String,
    index: i32,
    status: WireSeatStatusKind,
    booking_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireBookingState {
    booking: WireBooking,
}

#[derive(Serialize, Deserialize)]
struct WireAppliedOffset {
    applied_offset: i64,
}

// ---------- conversions ----------

fn parse<T: std::str::FromStr>(field: &'static str, s: &str) -> Result<T, DecodeError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| DecodeError::Field(field, e.to_string()))
}

fn int<T: TryFrom<i64>>(field: &'static str, v: i64) -> Result<T, DecodeError> {
    T::try_from(v).map_err(|_| DecodeError::Field(field, format!("{v} out of range")))
}

impl From<&EventSpec> for WireSpec {
    fn from(s: &EventSpec) -> Self {
        Self {
            name: s.name.clone(),
            starts_at_ms: s.starts_at_ms,
            sale_opens_at_ms: s.sale_opens_at_ms,
            sale_closes_at_ms: s.sale_closes_at_ms,
            venue_name: s.venue.name.clone(),
            sections: s
                .venue
                .sections
                .iter()
                .map(|sec| WireSection {
                    code: sec.code.to_string(),
                    name: sec.name.clone(),
                    price_category: sec.price_category.clone(),
                    rows: sec
                        .rows
                        .iter()
                        .map(|r| WireRow {
                            label: r.label.to_string(),
                            seats: i32::from(r.seats),
                        })
                        .collect(),
                })
                .collect(),
            price_categories: s
                .price_categories
                .iter()
                .map(|c| WirePriceCategory {
                    code: c.code.clone(),
                    name: c.name.clone(),
                    price_cents: c.price_cents,
                    currency: c.currency.clone(),
                })
                .collect(),
            max_seats_per_buyer: i32::from(s.max_seats_per_buyer),
            hold_duration_ms: s.hold_duration_ms,
            parts: i32::from(s.parts),
            organizer_id: s.organizer_id.map(|id| id.to_string()),
            waiting_room: s.waiting_room.map(|w| WireWaitingRoom {
                admissions_per_minute: i32::try_from(w.admissions_per_minute).unwrap_or(i32::MAX),
                opens_minutes_before: i32::try_from(w.opens_minutes_before).unwrap_or(i32::MAX),
                shopping_minutes: i32::try_from(w.shopping_minutes).unwrap_or(i32::MAX),
            }),
        }
    }
}

impl TryFrom<WireSpec> for EventSpec {
    type Error = DecodeError;
    fn try_from(w: WireSpec) -> Result<Self, DecodeError> {
        let sections = w
            .sections
            .into_iter()
            .map(|s| {
                Ok(Section {
                    code: parse("section.code", &s.code)?,
                    name: s.name,
                    price_category: s.price_category,
                    rows: s
                        .rows
                        .into_iter()
                        .map(|r| {
                            Ok(Row {
                                label: parse("row.label", &r.label)?,
                                seats: int("row.seats", r.seats.into())?,
                            })
                        })
                        .collect::<Result<_, DecodeError>>()?,
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        Ok(EventSpec {
            name: w.name,
            starts_at_ms: w.starts_at_ms,
            sale_opens_at_ms: w.sale_opens_at_ms,
            sale_closes_at_ms: w.sale_closes_at_ms,
            venue: VenueLayout {
                name: w.venue_name,
                sections,
            },
            price_categories: w
                .price_categories
                .into_iter()
                .map(|c| PriceCategory {
                    code: c.code,
                    name: c.name,
                    price_cents: c.price_cents,
                    currency: c.currency,
                })
                .collect(),
            max_seats_per_buyer: int("max_seats_per_buyer", w.max_seats_per_buyer.into())?,
            hold_duration_ms: w.hold_duration_ms,
            parts: int("parts", w.parts.into())?,
            organizer_id: w
                .organizer_id
                .map(|id| parse("organizer_id", &id))
                .transpose()?,
            waiting_room: w
                .waiting_room
                .map(|w| {
                    Ok::<_, DecodeError>(WaitingRoom {
                        admissions_per_minute: int(
                            "waiting_room.admissions_per_minute",
                            w.admissions_per_minute.into(),
                        )?,
                        opens_minutes_before: int(
                            "waiting_room.opens_minutes_before",
                            w.opens_minutes_before.into(),
                        )?,
                        shopping_minutes: int(
                            "waiting_room.shopping_minutes",
                            w.shopping_minutes.into(),
                        )?,
                    })
                })
                .transpose()?,
        })
    }
}

impl From<&Booking> for WireBooking {
    fn from(b: &Booking) -> Self {
        let (status, reject_reason) = match b.status {
            BookingStatus::Pending => (WireBookingStatus::Pending, None),
            BookingStatus::Held => (WireBookingStatus::Held, None),
            BookingStatus::Confirmed => (WireBookingStatus::Confirmed, None),
            BookingStatus::Cancelled => (WireBookingStatus::Cancelled, None),
            BookingStatus::Expired => (WireBookingStatus::Expired, None),
            BookingStatus::Rejected(r) => (WireBookingStatus::Rejected, Some(r)),
        };
        Self {
            booking_id: b.id.to_string(),
            event_id: b.event_id.to_string(),
            buyer_id: b.buyer.to_string(),
            seats: b.seats.iter().map(ToString::to_string).collect(),
            status,
            reject_reason,
            hold_expires_at_ms: b.hold_expires_at_ms,
            total_cents: b.total_cents,
            fingerprint: b.fingerprint.clone(),
            payment_reference: b.payment_reference.clone(),
            updated_at_ms: b.updated_at_ms,
            quota_of: b.quota_of.map(i32::from),
        }
    }
}

impl TryFrom<WireBooking> for Booking {
    type Error = DecodeError;
    fn try_from(w: WireBooking) -> Result<Self, DecodeError> {
        let status = match (w.status, w.reject_reason) {
            (WireBookingStatus::Pending, _) => BookingStatus::Pending,
            (WireBookingStatus::Held, _) => BookingStatus::Held,
            (WireBookingStatus::Confirmed, _) => BookingStatus::Confirmed,
            (WireBookingStatus::Cancelled, _) => BookingStatus::Cancelled,
            (WireBookingStatus::Expired, _) => BookingStatus::Expired,
            (WireBookingStatus::Rejected, Some(r)) => BookingStatus::Rejected(r),
            (WireBookingStatus::Rejected, None) => {
                return Err(DecodeError::Field(
                    "reject_reason",
                    "missing for a rejected booking".into(),
                ));
            }
        };
        Ok(Booking {
            id: parse("booking_id", &w.booking_id)?,
            event_id: parse("event_id", &w.event_id)?,
            buyer: parse("buyer_id", &w.buyer_id)?,
            seats: w
                .seats
                .iter()
                .map(|s| parse::<SeatId>("seats", s))
                .collect::<Result<_, _>>()?,
            status,
            hold_expires_at_ms: w.hold_expires_at_ms,
            total_cents: w.total_cents,
            fingerprint: w.fingerprint,
            payment_reference: w.payment_reference,
            updated_at_ms: w.updated_at_ms,
            quota_of: w.quota_of.map(|p| int("quota_of", p.into())).transpose()?,
        })
    }
}

impl From<&CommandEnvelope> for WireCommand {
    fn from(c: &CommandEnvelope) -> Self {
        let body = match &c.command.kind {
            CommandKind::CreateEvent { spec, part } => {
                WireCommandBody::CreateEvent(WireCreateEvent {
                    spec: spec.into(),
                    part: i32::from(*part),
                })
            }
            CommandKind::SetSale { open } => WireCommandBody::SetSale(WireSetSale { open: *open }),
            CommandKind::RequestBooking {
                booking_id,
                buyer,
                selection,
                fingerprint,
            } => WireCommandBody::RequestBooking(WireRequestBooking {
                booking_id: booking_id.to_string(),
                buyer_id: buyer.to_string(),
                selection: match selection {
                    Selection::Seats(seats) => WireSelection::ExplicitSeats(WireExplicitSeats {
                        seats: seats.iter().map(ToString::to_string).collect(),
                    }),
                    Selection::BestAvailable { section, quantity } => {
                        WireSelection::BestAvailable(WireBestAvailable {
                            section: section.to_string(),
                            quantity: i32::from(*quantity),
                        })
                    }
                },
                fingerprint: fingerprint.clone(),
            }),
            CommandKind::ConfirmBooking {
                booking_id,
                buyer,
                payment_reference,
            } => WireCommandBody::ConfirmBooking(WireConfirmBooking {
                booking_id: booking_id.to_string(),
                buyer_id: buyer.to_string(),
                payment_reference: payment_reference.clone(),
            }),
            CommandKind::CancelBooking { booking_id, buyer } => {
                WireCommandBody::CancelBooking(WireCancelBooking {
                    booking_id: booking_id.to_string(),
                    buyer_id: buyer.to_string(),
                })
            }
            CommandKind::ExpireHold { booking_id } => WireCommandBody::ExpireHold(WireExpireHold {
                booking_id: booking_id.to_string(),
            }),
            CommandKind::ReserveQuota {
                booking_id,
                buyer,
                seats,
                from_part,
            } => WireCommandBody::ReserveQuota(WireReserveQuota {
                quota_booking_id: booking_id.to_string(),
                quota_buyer_id: buyer.to_string(),
                quota_seats: seats.iter().map(ToString::to_string).collect(),
                from_part: i32::from(*from_part),
            }),
            CommandKind::QuotaAnswer {
                booking_id,
                buyer,
                granted,
            } => WireCommandBody::QuotaAnswer(WireQuotaAnswer {
                answered_booking_id: booking_id.to_string(),
                answered_buyer_id: buyer.to_string(),
                granted: *granted,
            }),
            CommandKind::ReleaseQuota { booking_id } => {
                WireCommandBody::ReleaseQuota(WireReleaseQuota {
                    released_booking_id: booking_id.to_string(),
                })
            }
        };
        Self {
            event_id: c.event_id.to_string(),
            at_ms: c.command.at_ms,
            reply_to: c.reply_to.clone(),
            body,
        }
    }
}

impl TryFrom<WireCommand> for CommandEnvelope {
    type Error = DecodeError;
    fn try_from(w: WireCommand) -> Result<Self, DecodeError> {
        let booking = |s: &str| parse::<BookingId>("booking_id", s);
        let buyer = |s: &str| parse::<BuyerId>("buyer_id", s);
        let kind = match w.body {
            WireCommandBody::CreateEvent(c) => CommandKind::CreateEvent {
                spec: c.spec.try_into()?,
                part: int("part", c.part.into())?,
            },
            WireCommandBody::SetSale(s) => CommandKind::SetSale { open: s.open },
            WireCommandBody::RequestBooking(r) => CommandKind::RequestBooking {
                booking_id: booking(&r.booking_id)?,
                buyer: buyer(&r.buyer_id)?,
                selection: match r.selection {
                    WireSelection::ExplicitSeats(e) => Selection::Seats(
                        e.seats
                            .iter()
                            .map(|s| parse("seats", s))
                            .collect::<Result<_, _>>()?,
                    ),
                    WireSelection::BestAvailable(b) => Selection::BestAvailable {
                        section: parse("section", &b.section)?,
                        quantity: int("quantity", b.quantity.into())?,
                    },
                },
                fingerprint: r.fingerprint,
            },
            WireCommandBody::ConfirmBooking(c) => CommandKind::ConfirmBooking {
                booking_id: booking(&c.booking_id)?,
                buyer: buyer(&c.buyer_id)?,
                payment_reference: c.payment_reference,
            },
            WireCommandBody::CancelBooking(c) => CommandKind::CancelBooking {
                booking_id: booking(&c.booking_id)?,
                buyer: buyer(&c.buyer_id)?,
            },
            WireCommandBody::ExpireHold(e) => CommandKind::ExpireHold {
                booking_id: booking(&e.booking_id)?,
            },
            WireCommandBody::ReserveQuota(q) => CommandKind::ReserveQuota {
                booking_id: booking(&q.quota_booking_id)?,
                buyer: buyer(&q.quota_buyer_id)?,
                seats: q
                    .quota_seats
                    .iter()
                    .map(|s| parse("seats", s))
                    .collect::<Result<_, _>>()?,
                from_part: int("from_part", q.from_part.into())?,
            },
            WireCommandBody::QuotaAnswer(a) => CommandKind::QuotaAnswer {
                booking_id: booking(&a.answered_booking_id)?,
                buyer: buyer(&a.answered_buyer_id)?,
                granted: a.granted,
            },
            WireCommandBody::ReleaseQuota(r) => CommandKind::ReleaseQuota {
                booking_id: booking(&r.released_booking_id)?,
            },
        };
        Ok(CommandEnvelope {
            event_id: parse("event_id", &w.event_id)?,
            reply_to: w.reply_to,
            command: Command {
                at_ms: w.at_ms,
                kind,
            },
        })
    }
}

impl From<&OutcomeEnvelope> for WireEvent {
    fn from(o: &OutcomeEnvelope) -> Self {
        let body = match &o.outcome {
            Outcome::EventCreated { spec, sale } => WireEventBody::EventCreated(WireEventCreated {
                spec: spec.into(),
                sale: *sale,
            }),
            Outcome::SaleChanged { sale } => {
                WireEventBody::SaleChanged(WireSaleChanged { sale: *sale })
            }
            Outcome::EventRejected { reason } => {
                WireEventBody::EventRejected(WireEventRejected { reason: *reason })
            }
            Outcome::Booking {
                booking_id,
                booking,
                rejection,
            } => WireEventBody::BookingOutcome(WireBookingOutcome {
                booking_id: booking_id.to_string(),
                booking: booking.as_ref().map(WireBooking::from),
                rejection: *rejection,
            }),
        };
        Self {
            event_id: o.event_id.to_string(),
            seq: o.seq,
            at_ms: o.at_ms,
            reply_to: o.reply_to.clone(),
            body,
            part: i32::from(o.part),
        }
    }
}

impl TryFrom<WireEvent> for OutcomeEnvelope {
    type Error = DecodeError;
    fn try_from(w: WireEvent) -> Result<Self, DecodeError> {
        let outcome = match w.body {
            WireEventBody::EventCreated(c) => Outcome::EventCreated {
                spec: c.spec.try_into()?,
                sale: c.sale,
            },
            WireEventBody::SaleChanged(s) => Outcome::SaleChanged { sale: s.sale },
            WireEventBody::EventRejected(r) => Outcome::EventRejected { reason: r.reason },
            WireEventBody::BookingOutcome(b) => Outcome::Booking {
                booking_id: parse("booking_id", &b.booking_id)?,
                booking: b.booking.map(Booking::try_from).transpose()?,
                rejection: b.rejection,
            },
        };
        Ok(OutcomeEnvelope {
            event_id: parse("event_id", &w.event_id)?,
            seq: w.seq,
            at_ms: w.at_ms,
            reply_to: w.reply_to,
            part: int("part", w.part.into())?,
            outcome,
        })
    }
}

impl From<&StateRecord> for WireStateBody {
    fn from(r: &StateRecord) -> Self {
        match r {
            StateRecord::Event {
                event_id,
                spec,
                sale,
                retired,
                part,
            } => WireStateBody::EventState(WireEventState {
                event_id: event_id.to_string(),
                spec: spec.into(),
                sale: *sale,
                retired: *retired,
                part: i32::from(*part),
            }),
            StateRecord::Seat {
                event_id,
                index,
                status,
            } => {
                let (kind, booking) = match status {
                    SeatStatus::Free => (WireSeatStatusKind::Free, None),
                    SeatStatus::Held(b) => (WireSeatStatusKind::Held, Some(b.to_string())),
                    SeatStatus::Sold(b) => (WireSeatStatusKind::Sold, Some(b.to_string())),
                };
                WireStateBody::SeatState(WireSeatState {
                    event_id: event_id.to_string(),
                    index: i32::try_from(*index).expect("seat index fits i32"),
                    status: kind,
                    booking_id: booking,
                })
            }
            StateRecord::Booking(b) => {
                WireStateBody::BookingState(WireBookingState { booking: b.into() })
            }
            StateRecord::Applied { offset } => WireStateBody::AppliedOffset(WireAppliedOffset {
                applied_offset: *offset,
            }),
            StateRecord::Claim { writer } => WireStateBody::OwnerClaim(WireOwnerClaim {
                writer: writer.clone(),
            }),
            StateRecord::Forgotten { at_ms } => {
                WireStateBody::Forgotten(WireForgotten { at_ms: *at_ms })
            }
        }
    }
}

impl From<&ChangelogRecord> for WireState {
    fn from(r: &ChangelogRecord) -> Self {
        let previous = match r.previous.as_ref().map(WireStateBody::from) {
            None => WirePrevious::None,
            Some(WireStateBody::EventState(e)) => WirePrevious::EventState(e),
            Some(WireStateBody::SeatState(s)) => WirePrevious::SeatState(s),
            Some(WireStateBody::BookingState(b)) => WirePrevious::BookingState(b),
            // A key that did not exist before (forgotten is the same as absent).
            Some(WireStateBody::Forgotten(_)) => WirePrevious::None,
            Some(WireStateBody::AppliedOffset(_) | WireStateBody::OwnerClaim(_)) => {
                unreachable!("markers and claims replace nothing")
            }
        };
        Self {
            body: (&r.body).into(),
            epoch: r.epoch,
            batch: r.batch,
            previous,
        }
    }
}

impl TryFrom<WireState> for ChangelogRecord {
    type Error = DecodeError;
    fn try_from(w: WireState) -> Result<Self, DecodeError> {
        let previous = match w.previous {
            WirePrevious::None => None,
            WirePrevious::EventState(e) => Some(WireStateBody::EventState(e).try_into()?),
            WirePrevious::SeatState(s) => Some(WireStateBody::SeatState(s).try_into()?),
            WirePrevious::BookingState(b) => Some(WireStateBody::BookingState(b).try_into()?),
        };
        Ok(Self {
            epoch: w.epoch,
            batch: w.batch,
            body: w.body.try_into()?,
            previous,
        })
    }
}

impl TryFrom<WireStateBody> for StateRecord {
    type Error = DecodeError;
    fn try_from(w: WireStateBody) -> Result<Self, DecodeError> {
        Ok(match w {
            WireStateBody::EventState(e) => StateRecord::Event {
                event_id: parse("event_id", &e.event_id)?,
                spec: e.spec.try_into()?,
                sale: e.sale,
                retired: e.retired,
                part: int("part", e.part.into())?,
            },
            WireStateBody::SeatState(s) => {
                let booking = || -> Result<BookingId, DecodeError> {
                    parse("booking_id", s.booking_id.as_deref().unwrap_or_default())
                };
                StateRecord::Seat {
                    event_id: parse("event_id", &s.event_id)?,
                    index: int("index", s.index.into())?,
                    status: match s.status {
                        WireSeatStatusKind::Free => SeatStatus::Free,
                        WireSeatStatusKind::Held => SeatStatus::Held(booking()?),
                        WireSeatStatusKind::Sold => SeatStatus::Sold(booking()?),
                    },
                }
            }
            WireStateBody::BookingState(b) => StateRecord::Booking(b.booking.try_into()?),
            WireStateBody::AppliedOffset(a) => StateRecord::Applied {
                offset: a.applied_offset,
            },
            WireStateBody::OwnerClaim(c) => StateRecord::Claim { writer: c.writer },
            WireStateBody::Forgotten(f) => StateRecord::Forgotten { at_ms: f.at_ms },
        })
    }
}

#[cfg(test)]
mod tests;
