//! The virtual waiting room of an on-sale (docs/waiting-room.md): who may
//! book when. Buyers who arrive before the sale opens are drawn in a random
//! order when it opens; later arrivals queue in arrival order. Every buyer
//! gets a turn (an instant, `slot`) at least one admission interval after
//! the one before, and may book from their turn for the shopping window.
//!
//! The API keeps the places in Redis and assigns them there atomically; the
//! rules are here, free of I/O, and the script follows them (its test
//! checks the script's answers against these functions).

use serde::{Deserialize, Serialize};

use crate::SaleState;

/// Most buyers admitted per minute: one a millisecond.
pub const MAX_ADMISSIONS_PER_MINUTE: u32 = 60_000;
/// Longest a waiting room may open before its sale (a week, in minutes).
pub const MAX_OPENS_MINUTES_BEFORE: u32 = 7 * 24 * 60;
/// Longest shopping window (minutes).
pub const MAX_SHOPPING_MINUTES: u32 = 120;

/// An organizer's settings for an event's waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingRoom {
    /// How many buyers are let in per minute, from the sale's opening.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 60000, example = 600)
    )]
    pub admissions_per_minute: u32,
    /// How long before the sale opens buyers may join (minutes). Everyone
    /// who joins before the opening is admitted in a random order.
    #[cfg_attr(feature = "openapi", schema(maximum = 10080, example = 30))]
    pub opens_minutes_before: u32,
    /// How long an admitted buyer may request seats, from their turn.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 120, example = 10))]
    pub shopping_minutes: u32,
}

impl WaitingRoom {
    /// Whether the settings are ones an organizer may choose.
    pub fn is_valid(&self) -> bool {
        (1..=MAX_ADMISSIONS_PER_MINUTE).contains(&self.admissions_per_minute)
            && self.opens_minutes_before <= MAX_OPENS_MINUTES_BEFORE
            && (1..=MAX_SHOPPING_MINUTES).contains(&self.shopping_minutes)
    }

    /// Time between two turns (ms): rounded up, so buyers are never let
    /// in faster than the rate (7 a minute is one every 8,572 ms, a little
    /// under 7 a minute).
    pub fn interval_ms(&self) -> i64 {
        i64::from(60_000u32.div_ceil(self.admissions_per_minute.max(1)))
    }

    pub fn window_ms(&self) -> i64 {
        i64::from(self.shopping_minutes) * 60_000
    }

    /// When buyers may start joining, for a sale opening at `opens_ms`.
    pub fn queue_opens_at_ms(&self, opens_ms: i64) -> i64 {
        opens_ms - i64::from(self.opens_minutes_before) * 60_000
    }

    /// The turn of the buyer drawn `rank`-th (from 0) among those who
    /// joined before the sale opened at `opens_ms`.
    pub fn drawn_slot(&self, opens_ms: i64, rank: u64) -> i64 {
        opens_ms.saturating_add(self.interval_ms().saturating_mul(rank as i64))
    }

    /// The turn of a buyer joining at `now_ms`, after the opening: one
    /// interval after the last turn given (`last`, the latest known) and
    /// after the `drawn` buyers' turns; never before `now_ms`. So a queue
    /// that was empty for a while does not let a burst in all at once, and
    /// a last turn that was lost (`None`) still queues behind the draw.
    pub fn next_slot(&self, opens_ms: i64, drawn: u64, last: Option<i64>, now_ms: i64) -> i64 {
        let after_draw = match drawn {
            0 => opens_ms - self.interval_ms(),
            n => self.drawn_slot(opens_ms, n - 1),
        };
        let previous = last.map_or(after_draw, |l| l.max(after_draw));
        now_ms.max(previous.saturating_add(self.interval_ms()))
    }

    /// How many of the `drawn` buyers have had their turn by `now_ms`.
    pub fn drawn_admitted(&self, opens_ms: i64, drawn: u64, now_ms: i64) -> u64 {
        if now_ms < opens_ms {
            return 0;
        }
        let turns = (now_ms - opens_ms) / self.interval_ms() + 1;
        drawn.min(turns as u64)
    }
}

/// Whether a buyer without a place may take one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joining {
    Open,
    /// Not before this instant (ms).
    NotYet(i64),
    Closed,
}

impl WaitingRoom {
    /// Whether a new place may be taken at `now_ms`, for a sale scheduled
    /// to open at `scheduled_ms` that opens (for the draw) at `opens_ms`
    /// (earlier when opened by hand) and closes at `closes_ms`. A sale
    /// opened by hand takes joiners whatever the schedule says; one closed
    /// by hand takes none; otherwise the queue opens `opens_minutes_before`
    /// the scheduled opening (or at the opening, if that came first) and
    /// closes with the sale.
    pub fn joining(
        &self,
        sale: SaleState,
        scheduled_ms: i64,
        opens_ms: i64,
        closes_ms: i64,
        now_ms: i64,
    ) -> Joining {
        let queue_opens = self.queue_opens_at_ms(scheduled_ms);
        match sale {
            SaleState::Open => Joining::Open,
            SaleState::Closed => Joining::Closed,
            SaleState::Scheduled if now_ms < queue_opens.min(opens_ms) => {
                Joining::NotYet(queue_opens)
            }
            SaleState::Scheduled if now_ms >= closes_ms => Joining::Closed,
            SaleState::Scheduled => Joining::Open,
        }
    }
}

/// Where a buyer with turn `slot` stands at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Not yet: `wait_ms` to go.
    Waiting { wait_ms: i64 },
    /// May request seats for `left_ms` more.
    Admitted { left_ms: i64 },
    /// The shopping window has ended: join again, at the back.
    Expired,
}

impl Turn {
    pub fn at(slot: i64, window_ms: i64, now_ms: i64) -> Self {
        if now_ms < slot {
            Self::Waiting {
                wait_ms: slot - now_ms,
            }
        } else if now_ms < slot.saturating_add(window_ms) {
            Self::Admitted {
                left_ms: slot + window_ms - now_ms,
            }
        } else {
            Self::Expired
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn room(per_minute: u32) -> WaitingRoom {
        WaitingRoom {
            admissions_per_minute: per_minute,
            opens_minutes_before: 30,
            shopping_minutes: 10,
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(room(60).is_valid());
        assert!(!room(0).is_valid());
        assert!(!room(MAX_ADMISSIONS_PER_MINUTE + 1).is_valid());
        let long = WaitingRoom {
            shopping_minutes: 0,
            ..room(60)
        };
        assert!(!long.is_valid());
        assert_eq!(room(60).interval_ms(), 1_000);
        assert_eq!(room(7).interval_ms(), 8_572);
        assert_eq!(room(MAX_ADMISSIONS_PER_MINUTE).interval_ms(), 1);
    }

    #[test]
    fn the_first_after_an_empty_draw_is_admitted_at_once() {
        let r = room(60);
        assert_eq!(r.next_slot(10_000, 0, None, 12_345), 12_345);
        // Behind three drawn buyers (turns 10, 11, 12 s): 13 s.
        assert_eq!(r.next_slot(10_000, 3, None, 10_500), 13_000);
        assert_eq!(r.next_slot(10_000, 3, Some(20_000), 10_500), 21_000);
        // A last turn older than the draw's (lost, then restored from an
        // early token) still queues behind the draw.
        assert_eq!(r.next_slot(10_000, 3, Some(10_000), 10_500), 13_000);
    }

    #[test]
    fn joining_follows_the_schedule_unless_the_organizer_decided() {
        let r = room(60); // opens 30 min before
        let (scheduled, closes) = (10_000_000, 20_000_000);
        let at = |sale, opens, now| r.joining(sale, scheduled, opens, closes, now);
        let queue_opens = scheduled - 30 * 60_000;
        use SaleState::*;
        assert_eq!(
            at(Scheduled, scheduled, queue_opens - 1),
            Joining::NotYet(queue_opens)
        );
        assert_eq!(at(Scheduled, scheduled, queue_opens), Joining::Open);
        assert_eq!(at(Scheduled, scheduled, closes), Joining::Closed);
        // Opened by hand an hour early: open from then, and after the close.
        assert_eq!(
            at(Open, queue_opens - 3_600_000, queue_opens - 1),
            Joining::Open
        );
        assert_eq!(at(Open, scheduled, closes + 1), Joining::Open);
        // Opened by hand before the queue would open, then set back to the
        // schedule: the draw has started, so joining stays open.
        let early = queue_opens - 60_000;
        assert_eq!(at(Scheduled, early, early + 1), Joining::Open);
        assert_eq!(at(Closed, scheduled, scheduled + 1), Joining::Closed);
    }

    #[test]
    fn a_turn_waits_then_shops_then_ends() {
        assert_eq!(Turn::at(100, 50, 40), Turn::Waiting { wait_ms: 60 });
        assert_eq!(Turn::at(100, 50, 100), Turn::Admitted { left_ms: 50 });
        assert_eq!(Turn::at(100, 50, 150), Turn::Expired);
    }

    proptest! {
        /// Whatever the rate, a minute holds no more turns than it says.
        #[test]
        fn the_interval_never_lets_in_more_than_the_rate(per_minute in 1..=MAX_ADMISSIONS_PER_MINUTE) {
            let r = room(per_minute);
            prop_assert!(r.interval_ms() >= 1);
            prop_assert!(r.interval_ms() * i64::from(per_minute) >= 60_000);
            // ...and not needlessly fewer: one interval less would be too fast.
            prop_assert!((r.interval_ms() - 1) * i64::from(per_minute) < 60_000);
        }

        /// Whatever the arrivals, turns are given in arrival order, never
        /// before the arrival, and at least one interval apart; so in any
        /// span of time at most `span / interval + 1` buyers get their turn,
        /// and an idle queue lets no burst in.
        #[test]
        fn turns_never_come_faster_than_the_rate(
            per_minute in 1u32..100_000,
            drawn in 0u64..50,
            gaps in proptest::collection::vec(0i64..5_000, 1..200),
        ) {
            let r = room(per_minute);
            let opens = 1_000_000;
            let mut turns: Vec<i64> = (0..drawn).map(|k| r.drawn_slot(opens, k)).collect();
            let (mut now, mut last) = (opens, None);
            for gap in gaps {
                now += gap;
                let slot = r.next_slot(opens, drawn, last, now);
                prop_assert!(slot >= now);
                if let Some(&previous) = turns.last() {
                    prop_assert!(slot - previous >= r.interval_ms());
                }
                turns.push(slot);
                last = Some(slot);
            }
            for (i, &from) in turns.iter().enumerate() {
                let span = r.interval_ms() * 10;
                let within = turns[i..].iter().take_while(|&&t| t < from + span).count();
                prop_assert!(within as i64 <= span / r.interval_ms() + 1);
            }
            let end = *turns.last().unwrap();
            prop_assert_eq!(r.drawn_admitted(opens, drawn, end), drawn);
        }

        /// The drawn buyers counted as admitted are exactly those whose
        /// turn has come.
        #[test]
        fn drawn_admitted_counts_the_turns_that_came(
            per_minute in 1u32..10_000,
            drawn in 0u64..500,
            after in -10_000i64..1_000_000,
        ) {
            let r = room(per_minute);
            let opens = 5_000_000;
            let now = opens + after;
            let came = (0..drawn).filter(|&k| r.drawn_slot(opens, k) <= now).count() as u64;
            prop_assert_eq!(r.drawn_admitted(opens, drawn, now), came);
        }
    }
}
