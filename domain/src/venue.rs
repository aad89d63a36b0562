//! Venue layouts and event specifications, validated once when an organizer
//! creates an event.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::ids::{BuyerId, RowLabel, SeatId, SectionCode};
use crate::waiting_room::WaitingRoom;

/// Most seats in one row.
pub const MAX_SEATS_PER_ROW: u16 = 500;
/// Most seats in one event.
pub const MAX_SEATS_PER_EVENT: usize = 100_000;
/// Most seats one buyer may hold or own in one event.
pub const MAX_SEATS_PER_BUYER_LIMIT: u16 = 50;
/// Most parts one event is split into (each part is decided on its own
/// partition of `booking-commands`; docs/event-partitioning.md).
pub const MAX_PARTS: u16 = 64;

/// A price category, e.g. "Premium" at 89.00 EUR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PriceCategory {
    pub code: String,
    pub name: String,
    /// Price per seat in the currency's minor unit (cents).
    pub price_cents: i64,
    pub currency: String,
}

/// A row of seats numbered 1..=seats from the left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Row {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "1"))]
    pub label: RowLabel,
    pub seats: u16,
}

/// A section of the venue; its rows are listed best first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Section {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "A"))]
    pub code: SectionCode,
    pub name: String,
    pub price_category: String,
    pub rows: Vec<Row>,
}

impl Section {
    pub fn capacity(&self) -> usize {
        self.rows.iter().map(|r| usize::from(r.seats)).sum()
    }
}

/// The seating plan of a venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VenueLayout {
    pub name: String,
    pub sections: Vec<Section>,
}

impl VenueLayout {
    pub fn capacity(&self) -> usize {
        self.sections.iter().map(Section::capacity).sum()
    }

    pub fn section(&self, code: &SectionCode) -> Option<&Section> {
        self.sections.iter().find(|s| &s.code == code)
    }

    /// Whether a seat exists in this layout.
    pub fn contains(&self, seat: &SeatId) -> bool {
        self.section(&seat.section)
            .and_then(|s| s.rows.iter().find(|r| r.label == seat.row))
            .is_some_and(|r| seat.number >= 1 && seat.number <= r.seats)
    }
}

/// Everything needed to put an event on sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventSpec {
    pub name: String,
    /// When the performance starts (ms since the Unix epoch).
    pub starts_at_ms: i64,
    /// The on-sale window: sale opens and closes at these instants (ms since
    /// the Unix epoch), unless an organizer opens or closes it by hand.
    pub sale_opens_at_ms: i64,
    pub sale_closes_at_ms: i64,
    pub venue: VenueLayout,
    pub price_categories: Vec<PriceCategory>,
    /// Most seats one buyer may hold or own at once.
    pub max_seats_per_buyer: u16,
    /// How long a hold lasts before it expires (ms).
    pub hold_duration_ms: i64,
    /// How many parts the venue is decided in, each on its own partition:
    /// section `i` belongs to part `i % parts` (docs/event-partitioning.md).
    /// 1, the default, decides the whole event on one partition.
    #[serde(default = "one_part")]
    #[cfg_attr(feature = "openapi", schema(default = 1, minimum = 1, maximum = 64))]
    pub parts: u16,
    /// The organizer account that created the event and alone may run its
    /// sale. Events from before accounts have none: the house organizer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_id: Option<uuid::Uuid>,
    /// The virtual waiting room in front of the sale, if the organizer
    /// wants one (docs/waiting-room.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoom>,
}

fn one_part() -> u16 {
    1
}

/// Why an event specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("event name must be 1-200 characters")]
    Name,
    #[error("the venue needs at least one section")]
    NoSections,
    #[error("section {0} appears twice")]
    DuplicateSection(SectionCode),
    #[error("section {0} has no rows")]
    EmptySection(SectionCode),
    #[error("row {1} appears twice in section {0}")]
    DuplicateRow(SectionCode, RowLabel),
    #[error("row {1} in section {0} must have 1-{MAX_SEATS_PER_ROW} seats")]
    RowSize(SectionCode, RowLabel),
    #[error("an event may have at most {MAX_SEATS_PER_EVENT} seats")]
    TooManySeats,
    #[error("section {0} uses unknown price category {1:?}")]
    UnknownPriceCategory(SectionCode, String),
    #[error("price category {0:?} is invalid (code 1-32 chars, price >= 0, 3-letter currency)")]
    PriceCategory(String),
    #[error("price category {0:?} appears twice")]
    DuplicatePriceCategory(String),
    #[error("the sale must close after it opens")]
    SaleWindow,
    #[error("max_seats_per_buyer must be 1-{MAX_SEATS_PER_BUYER_LIMIT}")]
    BuyerLimit,
    #[error("hold_duration_ms must be between 1 second and 1 hour")]
    HoldDuration,
    #[error("parts must be 1-{MAX_PARTS} and at most the number of sections")]
    Parts,
    #[error(
        "waiting_room: admissions_per_minute must be 1-{}, opens_minutes_before at most {}, shopping_minutes 1-{}",
        crate::waiting_room::MAX_ADMISSIONS_PER_MINUTE,
        crate::waiting_room::MAX_OPENS_MINUTES_BEFORE,
        crate::waiting_room::MAX_SHOPPING_MINUTES
    )]
    WaitingRoom,
}

impl EventSpec {
    /// Checks everything an organizer can get wrong.
    pub fn validate(&self) -> Result<(), LayoutError> {
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(LayoutError::Name);
        }
        if self.sale_closes_at_ms <= self.sale_opens_at_ms {
            return Err(LayoutError::SaleWindow);
        }
        if !(1..=MAX_SEATS_PER_BUYER_LIMIT).contains(&self.max_seats_per_buyer) {
            return Err(LayoutError::BuyerLimit);
        }
        if !(1_000..=3_600_000).contains(&self.hold_duration_ms) {
            return Err(LayoutError::HoldDuration);
        }
        let mut categories = HashSet::new();
        for c in &self.price_categories {
            let ok = (1..=32).contains(&c.code.len())
                && c.price_cents >= 0
                && c.currency.len() == 3
                && c.currency.chars().all(|ch| ch.is_ascii_uppercase());
            if !ok {
                return Err(LayoutError::PriceCategory(c.code.clone()));
            }
            if !categories.insert(c.code.as_str()) {
                return Err(LayoutError::DuplicatePriceCategory(c.code.clone()));
            }
        }
        if self.venue.sections.is_empty() {
            return Err(LayoutError::NoSections);
        }
        let mut sections = HashSet::new();
        for s in &self.venue.sections {
            if !sections.insert(&s.code) {
                return Err(LayoutError::DuplicateSection(s.code.clone()));
            }
            if s.rows.is_empty() {
                return Err(LayoutError::EmptySection(s.code.clone()));
            }
            if !categories.contains(s.price_category.as_str()) {
                return Err(LayoutError::UnknownPriceCategory(
                    s.code.clone(),
                    s.price_category.clone(),
                ));
            }
            let mut rows = HashSet::new();
            for r in &s.rows {
                if !rows.insert(&r.label) {
                    return Err(LayoutError::DuplicateRow(s.code.clone(), r.label.clone()));
                }
                if !(1..=MAX_SEATS_PER_ROW).contains(&r.seats) {
                    return Err(LayoutError::RowSize(s.code.clone(), r.label.clone()));
                }
            }
        }
        if self.venue.capacity() > MAX_SEATS_PER_EVENT {
            return Err(LayoutError::TooManySeats);
        }
        if !(1..=MAX_PARTS).contains(&self.parts)
            || usize::from(self.parts) > self.venue.sections.len()
        {
            return Err(LayoutError::Parts);
        }
        if self.waiting_room.is_some_and(|w| !w.is_valid()) {
            return Err(LayoutError::WaitingRoom);
        }
        Ok(())
    }

    /// The part that decides the section at `index` in layout order.
    pub fn part_of_section_index(&self, index: usize) -> u16 {
        // `parts` is at most MAX_PARTS, so the remainder fits.
        (index % usize::from(self.parts.max(1))) as u16
    }

    /// The part that decides a section, if the venue has it.
    pub fn part_of_section(&self, code: &SectionCode) -> Option<u16> {
        self.venue
            .sections
            .iter()
            .position(|s| &s.code == code)
            .map(|i| self.part_of_section_index(i))
    }

    /// The part that keeps a buyer's seat count for the per-buyer limit
    /// (the buyer's **home part**). Stable: derived from the id alone.
    pub fn home_part(&self, buyer: BuyerId) -> u16 {
        (buyer.0.as_u128() % u128::from(self.parts.max(1))) as u16
    }

    /// Price of one seat in a section, in cents.
    pub fn seat_price_cents(&self, section: &SectionCode) -> i64 {
        self.venue
            .section(section)
            .and_then(|s| {
                self.price_categories
                    .iter()
                    .find(|c| c.code == s.price_category)
            })
            .map_or(0, |c| c.price_cents)
    }

    /// A rectangular demo layout: `sections` sections named A, B, ... each with
    /// `rows` rows of `seats_per_row` seats, priced from most to least expensive.
    pub fn demo(name: &str, sections: u8, rows: u16, seats_per_row: u16, now_ms: i64) -> Self {
        let categories = [
            ("PREMIUM", "Premium", 12_900),
            ("STANDARD", "Standard", 7_900),
            ("VALUE", "Value", 3_900),
        ];
        let price_categories = categories
            .iter()
            .map(|(code, name, cents)| PriceCategory {
                code: (*code).to_owned(),
                name: (*name).to_owned(),
                price_cents: *cents,
                currency: "EUR".to_owned(),
            })
            .collect();
        let sections = (0..sections)
            .map(|i| {
                let letter = char::from(b'A' + (i % 26));
                Section {
                    code: letter
                        .to_string()
                        .parse()
                        .expect("single letter is a valid section"),
                    name: format!("Section {letter}"),
                    price_category: categories[usize::from(i).min(2)].0.to_owned(),
                    rows: (1..=rows)
                        .map(|r| Row {
                            label: r.to_string().parse().expect("number is a valid row label"),
                            seats: seats_per_row,
                        })
                        .collect(),
                }
            })
            .collect();
        Self {
            name: name.to_owned(),
            starts_at_ms: now_ms + 30 * 24 * 3_600_000,
            sale_opens_at_ms: now_ms,
            sale_closes_at_ms: now_ms + 29 * 24 * 3_600_000,
            venue: VenueLayout {
                name: "Demo Hall".to_owned(),
                sections,
            },
            price_categories,
            max_seats_per_buyer: 8,
            hold_duration_ms: 600_000,
            parts: 1,
            organizer_id: None,
            waiting_room: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_layout_is_valid() {
        let spec = EventSpec::demo("Demo", 3, 10, 20, 0);
        spec.validate().unwrap();
        assert_eq!(spec.venue.capacity(), 600);
        assert!(spec.venue.contains(&"B-10-20".parse().unwrap()));
        assert!(!spec.venue.contains(&"B-10-21".parse().unwrap()));
        assert!(!spec.venue.contains(&"D-1-1".parse().unwrap()));
        assert_eq!(spec.seat_price_cents(&"A".parse().unwrap()), 12_900);
    }

    #[test]
    fn invalid_layouts_are_refused_with_the_reason() {
        let mut spec = EventSpec::demo("Demo", 2, 2, 2, 0);
        spec.venue.sections[1].code = spec.venue.sections[0].code.clone();
        assert!(matches!(
            spec.validate(),
            Err(LayoutError::DuplicateSection(_))
        ));

        let mut spec = EventSpec::demo("Demo", 1, 2, 2, 0);
        spec.venue.sections[0].rows[0].seats = 0;
        assert!(matches!(spec.validate(), Err(LayoutError::RowSize(..))));

        let mut spec = EventSpec::demo("Demo", 1, 2, 2, 0);
        spec.sale_closes_at_ms = spec.sale_opens_at_ms;
        assert_eq!(spec.validate(), Err(LayoutError::SaleWindow));

        let mut spec = EventSpec::demo("Demo", 1, 2, 2, 0);
        spec.venue.sections[0].price_category = "NOPE".into();
        assert!(matches!(
            spec.validate(),
            Err(LayoutError::UnknownPriceCategory(..))
        ));

        let spec = EventSpec::demo("Demo", 1, 400, 500, 0);
        assert_eq!(spec.validate(), Err(LayoutError::TooManySeats));

        let mut spec = EventSpec::demo("Demo", 2, 2, 2, 0);
        spec.parts = 3;
        assert_eq!(spec.validate(), Err(LayoutError::Parts));
        spec.parts = 0;
        assert_eq!(spec.validate(), Err(LayoutError::Parts));

        let mut spec = EventSpec::demo("Demo", 2, 2, 2, 0);
        let room = WaitingRoom {
            admissions_per_minute: 600,
            opens_minutes_before: 30,
            shopping_minutes: 10,
        };
        spec.waiting_room = Some(room);
        assert_eq!(spec.validate(), Ok(()));
        spec.waiting_room = Some(WaitingRoom {
            admissions_per_minute: 0,
            ..room
        });
        assert_eq!(spec.validate(), Err(LayoutError::WaitingRoom));
    }

    #[test]
    fn sections_are_dealt_to_parts_in_turn_and_every_buyer_has_one_home() {
        let mut spec = EventSpec::demo("Demo", 5, 1, 1, 0);
        spec.parts = 2;
        spec.validate().unwrap();
        let parts: Vec<u16> = (0..5).map(|i| spec.part_of_section_index(i)).collect();
        assert_eq!(parts, [0, 1, 0, 1, 0]);
        assert_eq!(spec.part_of_section(&"B".parse().unwrap()), Some(1));
        assert_eq!(spec.part_of_section(&"Z".parse().unwrap()), None);
        let homes: HashSet<u16> = (0..50u128)
            .map(|n| spec.home_part(BuyerId(uuid::Uuid::from_u128(n))))
            .collect();
        assert_eq!(homes, HashSet::from([0, 1]));
        // An old spec without the field is one part.
        let mut json = serde_json::to_value(EventSpec::demo("Demo", 1, 1, 1, 0)).unwrap();
        json.as_object_mut().unwrap().remove("parts");
        let old: EventSpec = serde_json::from_value(json).unwrap();
        assert_eq!(old.parts, 1);
    }
}
