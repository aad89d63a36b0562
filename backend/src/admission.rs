//! Admission of new booking requests under overload: at most `max` on
//! their way through the pipeline at once per API instance
//! (docs/admission.md).
//!
//! Queueing more requests than the pipeline decides in time only makes every
//! answer late: at twice the sustainable rate a queue without a bound grows
//! until every buyer times out. With at most `max` in flight, an admitted
//! request waits behind at most `max` others, so its latency stays near
//! `max / throughput` (Little's law) however many arrive; the rest are
//! answered at once with `503 overloaded` and `Retry-After`.
//!
//! Confirmations, cancellations and organizer commands are never refused
//! here (a buyer who paid must not be turned away); they count as in flight.

use std::sync::atomic::{AtomicUsize, Ordering};

/// An API instance's admission, shared by every handler.
pub struct Admission {
    max: usize,
    in_flight: AtomicUsize,
}

/// One command on its way; dropping it ends it (also when its handler is
/// cancelled because the client went away).
pub struct Ticket<'a> {
    admission: &'a Admission,
}

impl Admission {
    /// At most `max` new booking requests in flight (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// A ticket for a new booking request, or `None` when `max` are on
    /// their way: the caller refuses it at once.
    pub fn try_admit(&self) -> Option<Ticket<'_>> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Ticket { admission: self })
    }

    /// A ticket for a command that is never refused (it still counts).
    pub fn always(&self) -> Ticket<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Ticket { admission: self }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.admission.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tickets_count_in_flight_and_refuse_above_the_limit() {
        let a = Admission::new(2);
        let t1 = a.try_admit().expect("first");
        let t2 = a.try_admit().expect("second");
        assert!(a.try_admit().is_none(), "third refused");
        let confirm = a.always();
        assert_eq!(
            a.in_flight(),
            3,
            "confirmations count but are never refused"
        );
        assert!(a.try_admit().is_none(), "still full");
        drop(t1);
        drop(confirm);
        assert!(a.try_admit().is_some(), "room again");
        drop(t2);
        assert_eq!(a.in_flight(), 0);
    }

    proptest! {
        /// Whatever the order of arrivals and departures, new bookings in
        /// flight never exceed the limit, one is refused only when it is
        /// reached, and every ticket gives its place back (threads: below).
        #[test]
        fn in_flight_never_exceeds_the_limit(
            max in 1usize..16,
            steps in proptest::collection::vec(any::<bool>(), 1..200),
        ) {
            let a = Admission::new(max);
            let mut held = Vec::new();
            for admit in steps {
                if admit {
                    match a.try_admit() {
                        Some(t) => held.push(t),
                        None => prop_assert_eq!(held.len(), max, "refused below the limit"),
                    }
                } else if !held.is_empty() {
                    held.remove(0);
                }
                prop_assert!(a.in_flight() <= max);
                prop_assert_eq!(a.in_flight(), held.len());
            }
            drop(held);
            prop_assert_eq!(a.in_flight(), 0);
        }
    }

    #[test]
    fn many_threads_never_pass_the_limit_together() {
        let a = std::sync::Arc::new(Admission::new(8));
        let peak = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (a, peak) = (a.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        if let Some(t) = a.try_admit() {
                            peak.fetch_max(a.in_flight(), Ordering::AcqRel);
                            drop(t);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::Acquire) <= 8);
        assert_eq!(a.in_flight(), 0);
    }
}
