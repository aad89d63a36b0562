//! What pages and server functions exchange. Plain data, shared by the
//! server (ssr) and the browser (hydrate).

use serde::{Deserialize, Serialize};

/// An event in the list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventCard {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub starts_at: String,
    pub on_sale: bool,
    pub capacity: u64,
    /// `scheduled`, `open` or `closed`.
    pub sale_state: String,
    /// When the sale opens, in words (`2026-12-24 18:00`, UTC).
    pub sale_opens: String,
    /// Seats neither held nor sold now.
    pub seats_left: u64,
}

/// Few seats left: at most a tenth of `capacity`, or 10 seats. The event
/// list and the venue overview say "few left" by this one rule.
pub fn few_left(free: u64, capacity: u64) -> bool {
    free <= (capacity / 10).max(10)
}

impl EventCard {
    /// What the list tells buyers about the sale: a class for the badge
    /// and the words.
    pub fn availability(&self) -> (&'static str, String) {
        let left = self.seats_left;
        let seats = |n: u64| {
            if n == 1 {
                "1 seat".to_owned()
            } else {
                format!("{n} seats")
            }
        };
        match (self.sale_state.as_str(), self.on_sale) {
            ("closed", false) => ("badge", "Sale closed".to_owned()),
            (_, false) => (
                "badge soon",
                format!("Not on sale yet: opens {} UTC", self.sale_opens),
            ),
            _ if left == 0 => ("badge sold-out", "Sold out".to_owned()),
            _ if few_left(left, self.capacity) => (
                "badge few",
                format!("Few left: {} of {}", seats(left), self.capacity),
            ),
            _ => (
                "badge open",
                format!("On sale: {} left of {}", seats(left), self.capacity),
            ),
        }
    }
}

/// A row of the layout: seats numbered `1..=seats`, each `SECTION-ROW-N`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowView {
    pub label: String,
    pub seats: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SectionView {
    pub code: String,
    pub name: String,
    pub category: String,
    /// The category's place in the event's list: its colour on the map.
    pub category_index: usize,
    /// Price of one seat, formatted (`89.00 EUR`).
    pub price: String,
    pub capacity: u64,
    pub rows: Vec<RowView>,
}

impl SectionView {
    /// The seat ids of row `row`, left to right.
    pub fn seat_ids<'a>(&'a self, row: &'a RowView) -> impl Iterator<Item = String> + 'a {
        (1..=row.seats).map(move |n| format!("{}-{}-{n}", self.code, row.label))
    }
}

/// Held or sold seats by id (`A-1-5` -> `held`); absent seats are free.
pub type SeatStates = std::collections::HashMap<String, String>;

/// The section of a seat id (`A` of `A-1-5`): codes never hold a `-`.
pub fn section_of(seat: &str) -> &str {
    seat.split_once('-').map_or(seat, |(s, _)| s)
}

/// Held and sold seats per section, from the seat states.
pub fn tally(states: &SeatStates) -> std::collections::HashMap<String, (u64, u64)> {
    // Counted by borrowed section codes: one allocation per section, not
    // per taken seat (it runs on every frame the feed changes seats).
    let mut counts = std::collections::HashMap::<&str, (u64, u64)>::new();
    for (seat, status) in states {
        let entry = counts.entry(section_of(seat)).or_default();
        if status == "sold" {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
    }
    counts
        .into_iter()
        .map(|(code, n)| (code.to_owned(), n))
        .collect()
}

/// The seat states from their compact form, as the API's seat map carries
/// them (`GET /api/events/{id}/seats?encoding=compact`): per section, one
/// character per seat in layout order (`.` free, `h` held, `s` sold). What
/// does not fit the layout is ignored.
pub fn decode_states(sections: &[SectionView], codes: &[String]) -> SeatStates {
    let mut states = SeatStates::new();
    for (s, code) in sections.iter().zip(codes) {
        let ids = s.rows.iter().flat_map(|r| s.seat_ids(r));
        for (id, c) in ids.zip(code.chars()) {
            match c {
                's' => {
                    states.insert(id, "sold".to_owned());
                }
                'h' => {
                    states.insert(id, "held".to_owned());
                }
                _ => {}
            }
        }
    }
    states
}

/// An event's layout and the state of its seats when the page was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventPageData {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub starts_at: String,
    pub on_sale: bool,
    pub max_seats: u64,
    /// How long a hold lasts, in words (`10 min`).
    pub hold: String,
    /// Currency of every price of the event (ISO 4217).
    pub currency: String,
    pub sections: Vec<SectionView>,
    /// The price categories' names and prices, in the event's order (the
    /// map's legend).
    pub categories: Vec<(String, String)>,
    /// The seats' states when the page was made ([`decode_states`] reads them).
    pub states: Vec<String>,
    /// Buyers admitted per minute, when the sale has a waiting room.
    pub waiting_room_per_minute: Option<u64>,
}

/// Where the visitor stands in an event's waiting room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomStanding {
    /// `waiting`, `admitted` or `expired`.
    pub state: String,
    /// Buyers ahead whose turn has not come; none before the draw.
    pub ahead: Option<u64>,
    pub waiting: u64,
    /// Seconds until the turn, when known.
    pub wait_s: Option<u64>,
    /// When the shopping window ends (ms since the epoch), once known.
    pub window_ends_ms: Option<i64>,
    /// When the sale opens, in words.
    pub sale_opens: String,
}

/// A buyer's booking as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BookingInfo {
    pub id: String,
    /// `pending` (still in the queue), `held`, `confirmed`, `cancelled`,
    /// `expired` or `rejected`.
    pub status: String,
    pub seats: Vec<String>,
    /// End of the hold, milliseconds since the epoch.
    pub hold_expires_at_ms: Option<i64>,
    /// What the seats cost together, in the currency's minor unit.
    pub total_cents: i64,
}

/// The answer to a buyer's action, in words, with the booking it concerns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuyerAnswer {
    pub ok: bool,
    pub message: String,
    pub booking: Option<BookingInfo>,
}

/// How a buyer asks for seats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SeatRequest {
    /// These seats, picked on the map.
    Seats(Vec<String>),
    /// The best `quantity` adjacent seats in a section.
    BestAvailable { section: String, quantity: u16 },
}

/// A price category in the organizer's form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoryForm {
    pub code: String,
    pub name: String,
    /// Price per seat in major units (`89.00`).
    pub price: String,
    pub currency: String,
}

/// A section in the organizer's form: `rows` rows (labelled 1..) of
/// `seats_per_row` seats each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SectionForm {
    pub code: String,
    pub name: String,
    pub category: String,
    pub rows: u16,
    pub seats_per_row: u16,
}

fn one_part() -> u16 {
    1
}

/// Everything the organizer's "new event" form sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub name: String,
    pub venue: String,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    pub starts_at: String,
    pub max_seats_per_buyer: u16,
    pub hold_minutes: u16,
    /// Parts the venue is decided in, each by its own seat-processor
    /// (docs/event-partitioning.md): more for a stadium on-sale.
    #[serde(default = "one_part")]
    pub parts: u16,
    /// A waiting room in front of the sale, letting this many buyers in
    /// per minute (docs/waiting-room.md); none when empty.
    #[serde(default)]
    pub waiting_room_per_minute: Option<u32>,
    /// Open the sale at once; otherwise at `sale_opens_at`.
    pub open_now: bool,
    /// `YYYY-MM-DDTHH:MM`, UTC; used when `open_now` is off.
    pub sale_opens_at: String,
    pub categories: Vec<CategoryForm>,
    pub sections: Vec<SectionForm>,
}

/// The live figures of one event's sale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaleStats {
    pub name: String,
    pub on_sale: bool,
    pub capacity: u64,
    pub free: u64,
    pub held: u64,
    pub sold: u64,
    pub revenue: String,
    /// Booking requests decided so far (for bookings per second).
    pub decided: u64,
    pub by_status: Vec<(String, u64)>,
    pub rejections: Vec<(String, u64)>,
    /// The waiting room: (buyers waiting, admitted so far, admitted per
    /// minute), when the sale has one.
    pub waiting_room: Option<(u64, u64, u64)>,
    pub at_ms: i64,
}

/// Consumer lag of one partition, from the broker: the end of the log
/// minus the group's committed offset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionLag {
    /// The consumer group, without the deployment's prefix.
    pub group: String,
    /// The topic, without the deployment's prefix.
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub end: i64,
    pub lag: i64,
}

/// One running instance of a role, as its metrics show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodStats {
    pub role: String,
    pub pod: String,
    pub requests_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub allocated_bytes: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub rocksdb_bytes: Option<f64>,
    pub tokio_workers: Option<f64>,
    pub tokio_alive_tasks: Option<f64>,
    pub tokio_queue_depth: Option<f64>,
}

/// What the operations view shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpsSnapshot {
    pub at_ms: i64,
    /// Where the per-pod figures come from.
    pub source: String,
    /// The prefix of every topic and group name (several systems can share
    /// a broker).
    pub prefix: String,
    pub lag: Vec<PartitionLag>,
    /// Messages on the dead-letter topic (none: it could not be read).
    pub dead_letters: Option<i64>,
    pub pods: Vec<PodStats>,
    /// Sources that could not be read, in words.
    pub problems: Vec<String>,
}

/// `12.3 MiB` for a byte count.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `1234.50 EUR` for minor units and a currency.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", c / 100, c % 100)
        .trim_end()
        .to_owned()
}

/// Parses `89`, `89.5` or `89.50` into minor units; `None` for anything else.
pub fn parse_money(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

/// A duration in words: `10 min`, `1 min 30 s`, `45 s`.
pub fn duration_words(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match (s / 60, s % 60) {
        (0, sec) => format!("{sec} s"),
        (min, 0) => format!("{min} min"),
        (min, sec) => format!("{min} min {sec} s"),
    }
}

/// `mm:ss` left until `deadline_ms`, or `None` once it passed.
pub fn countdown(deadline_ms: i64, now_ms: i64) -> Option<String> {
    let left = (deadline_ms - now_ms) / 1000;
    (deadline_ms > now_ms).then(|| format!("{:02}:{:02}", left / 60, left % 60))
}

/// What an organizer reads on another organizer's sale view.
pub const NOT_YOUR_EVENT: &str = "This event belongs to another organizer.";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The compact form written from seat states, as a reference for the
    /// reader (the API writes it from the cache).
    fn encode_states(sections: &[SectionView], states: &SeatStates) -> Vec<String> {
        sections
            .iter()
            .map(|s| {
                s.rows
                    .iter()
                    .flat_map(|r| s.seat_ids(r))
                    .map(|id| match states.get(&id).map(String::as_str) {
                        None => '.',
                        Some("sold") => 's',
                        Some(_) => 'h',
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn money_round_trips_through_text() {
        assert_eq!(money(8_900, "EUR"), "89.00 EUR");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(-150, "USD"), "-1.50 USD");
        assert_eq!(parse_money("89"), Some(8_900));
        assert_eq!(parse_money("89.5"), Some(8_950));
        assert_eq!(parse_money(" 0.05 "), Some(5));
        for bad in ["", "-1", "1.234", "1,50", "abc", ".5", "1.x"] {
            assert_eq!(parse_money(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_words(600_000), "10 min");
        assert_eq!(duration_words(90_000), "1 min 30 s");
        assert_eq!(duration_words(4_000), "4 s");
    }

    /// A section of `rows` (label, seats) for tests.
    pub(crate) fn section(code: &str, rows: &[(&str, u32)]) -> SectionView {
        SectionView {
            code: code.to_owned(),
            name: format!("Section {code}"),
            category: "Standard".to_owned(),
            category_index: 0,
            price: "79.00 EUR".to_owned(),
            capacity: rows.iter().map(|(_, n)| u64::from(*n)).sum(),
            rows: rows
                .iter()
                .map(|(label, seats)| RowView {
                    label: (*label).to_owned(),
                    seats: *seats,
                })
                .collect(),
        }
    }

    #[test]
    fn seat_states_travel_as_one_character_per_seat() {
        let sections = vec![
            section("A", &[("1", 3), ("2", 2)]),
            section("B_2", &[("AA", 2)]),
        ];
        let mut states = SeatStates::new();
        states.insert("A-1-2".into(), "held".into());
        states.insert("A-2-2".into(), "sold".into());
        states.insert("B_2-AA-1".into(), "sold".into());
        // Not in the layout: left out.
        states.insert("C-1-1".into(), "sold".into());
        let codes = encode_states(&sections, &states);
        assert_eq!(codes, vec![".h..s".to_owned(), "s.".to_owned()]);
        states.remove("C-1-1");
        assert_eq!(decode_states(&sections, &codes), states);
        // Too short, too long or garbled codes read what fits.
        let odd = decode_states(&sections, &["sx".to_owned()]);
        assert_eq!(odd.len(), 1);
        assert_eq!(tally(&states).get("A"), Some(&(1, 1)));
        assert_eq!(tally(&states).get("B_2"), Some(&(0, 1)));
    }

    proptest::proptest! {
        #[test]
        fn any_seat_states_round_trip(
            rows in proptest::collection::vec(1u32..30, 1..6),
            marks in proptest::collection::vec(0u8..3, 0..200),
        ) {
            let layout: Vec<(String, u32)> = rows.iter().enumerate().map(|(i, n)| (format!("R{i}"), *n)).collect();
            let borrowed: Vec<(&str, u32)> = layout.iter().map(|(l, n)| (l.as_str(), *n)).collect();
            let sections = vec![section("A", &borrowed), section("B", &borrowed)];
            let ids: Vec<String> = sections.iter().flat_map(|s| s.rows.iter().flat_map(|r| s.seat_ids(r)).collect::<Vec<_>>()).collect();
            let mut states = SeatStates::new();
            for (id, m) in ids.iter().zip(marks) {
                match m {
                    1 => { states.insert(id.clone(), "held".into()); }
                    2 => { states.insert(id.clone(), "sold".into()); }
                    _ => {}
                }
            }
            let codes = encode_states(&sections, &states);
            proptest::prop_assert_eq!(codes.iter().map(String::len).sum::<usize>(), ids.len());
            proptest::prop_assert_eq!(decode_states(&sections, &codes), states);
        }
    }

    #[test]
    fn the_list_tells_the_truth_about_each_sale() {
        let card = |state: &str, on_sale: bool, left: u64| EventCard {
            id: "e".into(),
            name: "n".into(),
            venue: "v".into(),
            starts_at: "s".into(),
            on_sale,
            capacity: 20_000,
            sale_state: state.into(),
            sale_opens: "2026-12-24 18:00".into(),
            seats_left: left,
        };
        assert_eq!(
            card("open", true, 15_000).availability().1,
            "On sale: 15000 seats left of 20000"
        );
        assert_eq!(
            card("open", true, 2_000).availability(),
            ("badge few", "Few left: 2000 seats of 20000".to_owned())
        );
        assert_eq!(
            card("open", true, 1).availability().1,
            "Few left: 1 seat of 20000"
        );
        assert_eq!(
            card("open", true, 0).availability(),
            ("badge sold-out", "Sold out".to_owned())
        );
        assert_eq!(
            card("scheduled", false, 20_000).availability().1,
            "Not on sale yet: opens 2026-12-24 18:00 UTC"
        );
        assert_eq!(card("closed", false, 5).availability().1, "Sale closed");
        // A small hall: few left means ten seats or fewer.
        let small = EventCard {
            capacity: 60,
            ..card("open", true, 10)
        };
        assert_eq!(small.availability().0, "badge few");
        let small = EventCard {
            capacity: 60,
            ..card("open", true, 11)
        };
        assert_eq!(small.availability().0, "badge open");
    }

    #[test]
    fn the_countdown_ends_at_the_deadline() {
        assert_eq!(countdown(600_000, 0).as_deref(), Some("10:00"));
        assert_eq!(countdown(61_500, 0).as_deref(), Some("01:01"));
        assert_eq!(countdown(1_000, 1_000), None);
    }
}
