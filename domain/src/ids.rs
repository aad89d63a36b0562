//! Identifiers, parsed and validated at the edge so that nothing past it
//! handles raw strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("section code must be 1-16 letters, digits or '_', got {0:?}")]
    Section(String),
    #[error("row label must be 1-8 letters or digits, got {0:?}")]
    Row(String),
    #[error("seat id must look like SECTION-ROW-NUMBER (e.g. A-3-12), got {0:?}")]
    Seat(String),
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// An event (one performance at one venue) that sells seats.
    EventId
);
uuid_id!(
    /// A buyer: the person holding and paying for seats.
    BuyerId
);
uuid_id!(
    /// One booking: a set of seats held, then confirmed, cancelled or expired.
    BookingId
);

/// Namespace for booking ids derived from idempotency keys.
const BOOKING_NAMESPACE: Uuid = Uuid::from_u128(0x6b6f_7866_6669_6365_626f_6f6b_696e_6721);

impl BookingId {
    /// The booking id for a buyer's idempotency key: the same key from the
    /// same buyer always names the same booking, so a retried request can never
    /// create a second one.
    pub fn for_idempotency_key(buyer: BuyerId, key: &str) -> Self {
        let mut name = buyer.0.as_bytes().to_vec();
        name.extend_from_slice(key.as_bytes());
        Self(Uuid::new_v5(&BOOKING_NAMESPACE, &name))
    }

    /// The booking id for a buyer's idempotency key on part `part` of an
    /// event (docs/event-partitioning.md): part 0 is the id above, so an
    /// event in one part keeps its ids. The same key reused for seats of
    /// another part names another booking there, never a second copy of
    /// one booking in two parts.
    pub fn for_request(buyer: BuyerId, key: &str, part: u16) -> Self {
        if part == 0 {
            return Self::for_idempotency_key(buyer, key);
        }
        let mut name = buyer.0.as_bytes().to_vec();
        name.extend_from_slice(key.as_bytes());
        name.extend_from_slice(b"\0part");
        name.extend_from_slice(&part.to_be_bytes());
        Self(Uuid::new_v5(&BOOKING_NAMESPACE, &name))
    }
}

/// A section of a venue, e.g. `A` or `BALCONY_L`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SectionCode(String);

impl SectionCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SectionCode {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok =
            (1..=16).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(Self(s))
        } else {
            Err(IdError::Section(s))
        }
    }
}

impl FromStr for SectionCode {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<SectionCode> for String {
    fn from(s: SectionCode) -> Self {
        s.0
    }
}

impl fmt::Display for SectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A row within a section, e.g. `1` or `AA`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RowLabel(String);

impl RowLabel {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RowLabel {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric());
        if ok {
            Ok(Self(s))
        } else {
            Err(IdError::Row(s))
        }
    }
}

impl FromStr for RowLabel {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<RowLabel> for String {
    fn from(r: RowLabel) -> Self {
        r.0
    }
}

impl fmt::Display for RowLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One seat: section, row and number within the row (1-based), written
/// `SECTION-ROW-NUMBER`, e.g. `A-3-12`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SeatId {
    pub section: SectionCode,
    pub row: RowLabel,
    pub number: u16,
}

impl FromStr for SeatId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdError::Seat(s.to_owned());
        let mut parts = s.splitn(3, '-');
        let (Some(section), Some(row), Some(number)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let number: u16 = number.parse().map_err(|_| bad())?;
        if number == 0 {
            return Err(bad());
        }
        Ok(Self {
            section: section.parse().map_err(|_| bad())?,
            row: row.parse().map_err(|_| bad())?,
            number,
        })
    }
}

impl TryFrom<String> for SeatId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SeatId> for String {
    fn from(s: SeatId) -> Self {
        s.to_string()
    }
}

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.section, self.row, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_id_round_trips_through_its_text_form() {
        let seat: SeatId = "BALC_L-AA-12".parse().unwrap();
        assert_eq!(seat.section.as_str(), "BALC_L");
        assert_eq!(seat.row.as_str(), "AA");
        assert_eq!(seat.number, 12);
        assert_eq!(seat.to_string(), "BALC_L-AA-12");
    }

    #[test]
    fn malformed_seat_ids_are_refused() {
        for bad in [
            "",
            "A",
            "A-1",
            "A-1-0",
            "A-1-x",
            "A-1-1-1",
            "A B-1-1",
            "A-1--1",
            "A-1-70000",
        ] {
            assert!(bad.parse::<SeatId>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn the_same_idempotency_key_names_the_same_booking() {
        let buyer = BuyerId(Uuid::from_u128(7));
        let other = BuyerId(Uuid::from_u128(8));
        let a = BookingId::for_idempotency_key(buyer, "k1");
        assert_eq!(a, BookingId::for_idempotency_key(buyer, "k1"));
        assert_ne!(a, BookingId::for_idempotency_key(buyer, "k2"));
        assert_ne!(a, BookingId::for_idempotency_key(other, "k1"));
    }
}
