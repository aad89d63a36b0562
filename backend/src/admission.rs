//! Admission of new booking requests under overload: how many may be on
//! their way through the pipeline at once, adapted to the latency the
//! pipeline shows (docs/admission.md).
//!
//! Queueing more requests than the pipeline decides per latency target only
//! makes every answer late: at twice the sustainable rate a queue without a
//! bound grows until every buyer times out. So an API instance keeps at most
//! `limit` booking requests in flight and answers the rest at once with
//! `503 overloaded` and `Retry-After`. The limit moves like TCP's congestion
//! window, once per window of `target` length:
//! - it doubles (slow start) or grows by a twentieth while it is in use and
//!   at most one decision in twenty of the window took longer than `target`;
//! - it shrinks by a fifth when more did, and slow start ends;
//! - a limit nobody fills neither grows nor shrinks, so a quiet sale does not
//!   wind it up for the spike, nor do a few slow answers at low load wind it
//!   down.
//!
//! Confirmations, cancellations and organizer commands are never refused
//! here (a buyer who paid must not be turned away); they count as in flight.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The adaptive limit itself: pure, driven by the caller's clock.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    limit: f64,
    min: f64,
    max: f64,
    target: Duration,
    slow_start: bool,
    window: Window,
}

/// The decisions of the window under way.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Duration,
    decisions: u32,
    late: u32,
    /// The most in flight at once during the window.
    peak: usize,
}

/// At most one decision in this many may be late without counting as
/// congestion (the p95 of a window stays under the target).
const LATE_SHARE: u32 = 20;

impl ConcurrencyLimit {
    /// Starts at `initial`, within `[min, max]`; `target` is the latency a
    /// decision should stay under and the length of a window.
    pub fn new(initial: usize, min: usize, max: usize, target: Duration) -> Self {
        let min = min.max(1) as f64;
        let max = (max as f64).max(min);
        Self {
            limit: (initial as f64).clamp(min, max),
            min,
            max,
            target: target.max(Duration::from_millis(1)),
            slow_start: true,
            window: Window {
                started: Duration::ZERO,
                decisions: 0,
                late: 0,
                peak: 0,
            },
        }
    }

    /// How many may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// Whether one more may start with `in_flight` already on their way.
    pub fn admits(&self, in_flight: usize) -> bool {
        in_flight < self.limit()
    }

    /// Notes that `in_flight` are on their way at `now` (time since any
    /// fixed origin, the same for every call).
    pub fn started(&mut self, now: Duration, in_flight: usize) {
        self.roll(now);
        self.window.peak = self.window.peak.max(in_flight);
    }

    /// Notes a decision that took `latency`, answered at `now`.
    pub fn decided(&mut self, now: Duration, latency: Duration) {
        self.roll(now);
        self.window.decisions += 1;
        if latency > self.target {
            self.window.late += 1;
        }
    }

    /// Closes the window if `now` is past it, moving the limit.
    fn roll(&mut self, now: Duration) {
        if now < self.window.started + self.target {
            return;
        }
        let w = self.window;
        // In use: the window came within a tenth of the limit.
        let in_use = w.peak as f64 >= self.limit * 0.9;
        if w.decisions > 0 && w.late * LATE_SHARE > w.decisions {
            if in_use || w.peak as f64 >= self.limit * 0.5 {
                self.limit = (self.limit * 0.8).max(self.min);
                self.slow_start = false;
            }
        } else if in_use {
            self.limit = if self.slow_start {
                self.limit * 2.0
            } else {
                self.limit + (self.limit / 20.0).max(1.0)
            }
            .min(self.max);
        }
        self.window = Window {
            started: now,
            decisions: 0,
            late: 0,
            peak: 0,
        };
    }
}

/// An API instance's admission: the limit, the count in flight, and the
/// clock, shared by every handler.
pub struct Admission {
    limit: Mutex<ConcurrencyLimit>,
    in_flight: AtomicUsize,
    origin: Instant,
}

/// One command on its way; dropping it ends it (also when its handler is
/// cancelled because the client went away).
pub struct Ticket<'a> {
    admission: &'a Admission,
    started: Instant,
}

impl Admission {
    pub fn new(limit: ConcurrencyLimit) -> Self {
        Self {
            limit: Mutex::new(limit),
            in_flight: AtomicUsize::new(0),
            origin: Instant::now(),
        }
    }

    /// A ticket for a new booking request, or `None` when the limit is
    /// reached: the caller refuses it at once.
    pub fn try_admit(&self) -> Option<Ticket<'_>> {
        let mut limit = self.limit.lock().expect("admission lock");
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        if !limit.admits(in_flight) {
            return None;
        }
        limit.started(self.origin.elapsed(), in_flight + 1);
        drop(limit);
        Some(self.enter())
    }

    /// A ticket for a command that is never refused (it still counts).
    pub fn always(&self) -> Ticket<'_> {
        self.enter()
    }

    fn enter(&self) -> Ticket<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ticket {
            admission: self,
            started: Instant::now(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit.lock().expect("admission lock").limit()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

impl Ticket<'_> {
    /// The command was decided (or its deadline passed): its latency is a
    /// sample for the limit. A ticket dropped without this (its client went
    /// away) tells nothing about the pipeline.
    pub fn decided(self) {
        let now = self.admission.origin.elapsed();
        self.admission
            .limit
            .lock()
            .expect("admission lock")
            .decided(now, self.started.elapsed());
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.admission.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TARGET: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs one window: `in_flight` at its peak, `fast` and `late` decisions.
    fn window(l: &mut ConcurrencyLimit, at: u64, in_flight: usize, fast: u32, late: u32) {
        l.started(ms(at), in_flight);
        for _ in 0..fast {
            l.decided(ms(at + 1), ms(10));
        }
        for _ in 0..late {
            l.decided(ms(at + 1), ms(200));
        }
    }

    #[test]
    fn a_limit_in_use_doubles_until_latency_suffers_then_grows_slowly() {
        let mut l = ConcurrencyLimit::new(16, 4, 10_000, TARGET);
        window(&mut l, 0, 16, 100, 0);
        window(&mut l, 50, 32, 100, 0);
        assert_eq!(
            l.limit(),
            32,
            "doubled once, at the end of the first window"
        );
        window(&mut l, 100, 32, 100, 20);
        window(&mut l, 150, 64, 100, 0);
        assert_eq!(
            l.limit(),
            51,
            "late decisions cut it by a fifth: {}",
            l.limit()
        );
        window(&mut l, 200, 51, 100, 0);
        assert_eq!(l.limit(), 53, "after slow start it grows by a twentieth");
    }

    #[test]
    fn an_unused_limit_stays_where_it_is() {
        let mut l = ConcurrencyLimit::new(100, 4, 10_000, TARGET);
        for w in 0..20 {
            window(&mut l, w * 50, 3, 10, 0);
        }
        assert_eq!(l.limit(), 100, "no growth while far from the limit");
        for w in 20..40 {
            window(&mut l, w * 50, 3, 10, 5);
        }
        assert_eq!(
            l.limit(),
            100,
            "slow answers at low load are not congestion"
        );
    }

    #[test]
    fn a_few_late_decisions_are_tolerated() {
        let mut l = ConcurrencyLimit::new(64, 4, 10_000, TARGET);
        window(&mut l, 0, 64, 95, 5);
        window(&mut l, 50, 0, 0, 0);
        assert_eq!(l.limit(), 128, "5 in 100 late: still grows");
    }

    #[test]
    fn the_limit_respects_its_bounds() {
        let mut l = ConcurrencyLimit::new(8, 4, 20, TARGET);
        for w in 0..10 {
            window(&mut l, w * 50, 20, 10, 0);
        }
        assert_eq!(l.limit(), 20);
        for w in 10..40 {
            window(&mut l, w * 50, 20, 0, 10);
        }
        assert_eq!(l.limit(), 4);
        assert!(!l.admits(4) && l.admits(3));
    }

    #[test]
    fn tickets_count_in_flight_and_refuse_above_the_limit() {
        let a = Admission::new(ConcurrencyLimit::new(2, 1, 2, TARGET));
        let t1 = a.try_admit().expect("first");
        let t2 = a.try_admit().expect("second");
        assert!(a.try_admit().is_none(), "third refused");
        let confirm = a.always();
        assert_eq!(
            a.in_flight(),
            3,
            "confirmations count but are never refused"
        );
        t1.decided();
        drop(t2);
        drop(confirm);
        assert_eq!(a.in_flight(), 0);
        assert!(a.try_admit().is_some());
    }

    proptest! {
        /// Whatever the pipeline does, the limit stays within its bounds,
        /// and a window with more late decisions than allowed never raises it.
        #[test]
        fn the_limit_stays_bounded_and_never_grows_on_congestion(
            windows in proptest::collection::vec((0usize..400, 0u32..50, 0u32..50), 1..60),
        ) {
            let mut l = ConcurrencyLimit::new(32, 4, 256, TARGET);
            for (i, (peak, fast, late)) in windows.into_iter().enumerate() {
                let before = l.limit();
                window(&mut l, i as u64 * 50, peak, fast, late);
                // The window just run is judged when the next one starts.
                l.started(ms((i as u64 + 1) * 50), 0);
                let after = l.limit();
                prop_assert!((4..=256).contains(&after));
                if late * LATE_SHARE > fast + late {
                    prop_assert!(after <= before, "{before} -> {after} on a congested window");
                }
                if (peak as f64) < before as f64 * 0.5 {
                    prop_assert_eq!(after, before, "a limit far from use must not move");
                }
            }
        }
    }
}
