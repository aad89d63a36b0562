//! A deterministic simulation of the protocol: writers (new owners, zombies
//! that keep writing, crashes mid-snapshot and mid-batch) append to one log
//! in an order drawn by proptest, and the log is compacted at random moments
//! the way Kafka's cleaner does. After every step, a restore from the log as
//! it stands, and from a randomly compacted view of it, must give exactly the
//! state after the commands it says it reflects.

use std::collections::BTreeMap;

use boxoffice_domain::{BookingId, EventId, SeatStatus};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const SEATS: u32 = 8;
const COMMANDS: i64 = 40;
const SLOTS: usize = 3;

/// A toy seat map: seat index -> holder (0: free).
type State = BTreeMap<u32, u128>;

fn event() -> EventId {
    EventId(Uuid::from_u128(1))
}

fn seat(index: u32, holder: u128) -> StateRecord {
    StateRecord::Seat {
        event_id: event(),
        index,
        status: if holder == 0 {
            SeatStatus::Free
        } else {
            SeatStatus::Held(BookingId(Uuid::from_u128(holder)))
        },
    }
}

/// Command `i`: deterministic and dependent on the state, so a wrong state
/// shows in the values of later commands.
fn apply(state: &mut State, i: i64) -> [u32; 2] {
    let i = u32::try_from(i).expect("small");
    let (a, b) = ((i * 7) % SEATS, (i * 3 + 1) % SEATS);
    let va = (state.get(&a).copied().unwrap_or(0) * 31 + u128::from(i) + 1) % 1000;
    let vb = (state.get(&b).copied().unwrap_or(0) + va) % 7;
    state.insert(a, va);
    state.insert(b, vb);
    [a, b]
}

/// The state after commands `0..=applied`.
fn truth(applied: Option<i64>) -> State {
    let mut s = State::new();
    for i in 0..=applied.unwrap_or(-1) {
        apply(&mut s, i);
    }
    s.retain(|_, v| *v != 0);
    s
}

fn state_of(found: &Found) -> State {
    found
        .state
        .values()
        .filter_map(|r| match r {
            StateRecord::Seat {
                index,
                status: SeatStatus::Held(b) | SeatStatus::Sold(b),
                ..
            } => Some((*index, b.0.as_u128())),
            _ => None,
        })
        .collect()
}

/// One writer session: what it still has to append, and its view.
struct Writer {
    epoch: Option<i64>,
    outbox: Vec<LogEntry>,
    state: State,
    applied: Option<i64>,
    restored: bool,
    dead: bool,
    /// Keys its last batch forgot: the next batch tombstones them.
    forgotten: Vec<String>,
}

/// How a batch writes seat `i` now held by `holder`: a free seat is written
/// as forgotten on odd commands (the way expired refusals and retired events
/// leave the state), as a free seat otherwise.
fn written(i: u32, holder: u128, batch: i64) -> StateRecord {
    if holder == 0 && batch % 2 == 1 {
        StateRecord::Forgotten { at_ms: batch }
    } else {
        seat(i, holder)
    }
}

impl Writer {
    fn new() -> Self {
        Self {
            epoch: None,
            // Its offset is set when it lands.
            outbox: vec![claim(-1)],
            state: State::new(),
            applied: None,
            restored: false,
            dead: false,
            forgotten: vec![],
        }
    }

    /// Plans what comes next once the outbox is empty: a restore and
    /// snapshot after the claim, then batches of 1..=4 commands.
    fn plan(&mut self, log: &[LogEntry], batch_len: i64) {
        let Some(epoch) = self.epoch else { return };
        if !self.restored {
            self.restored = true;
            let found = match fold(log.iter().cloned(), epoch) {
                Ok(f) => f,
                Err(FoldError::Superseded { .. }) => {
                    self.dead = true;
                    return;
                }
                Err(e) => panic!("{e}"),
            };
            self.applied = found.applied;
            self.state = state_of(&found);
            let batch = found.applied.unwrap_or(-1);
            let snapshot: Vec<(u32, u128)> = self.state.iter().map(|(i, h)| (*i, *h)).collect();
            for (i, h) in snapshot {
                self.push(
                    key(epoch, &seat(i, h)),
                    record(epoch, batch, seat(i, h), None),
                );
            }
            let (k, v) = marker(epoch, batch);
            self.push(k, v);
            for k in found.stale {
                self.outbox.push(LogEntry {
                    offset: -1,
                    key: k,
                    value: None,
                });
            }
            return;
        }
        let first = self.applied.map_or(0, |a| a + 1);
        let last = (first + batch_len - 1).min(COMMANDS - 1);
        if first > last {
            return;
        }
        let before = self.state.clone();
        let mut touched = std::collections::BTreeSet::new();
        for i in first..=last {
            touched.extend(apply(&mut self.state, i));
        }
        // The keys the previous batch forgot are absent as of its marker:
        // a tombstone now changes nothing, torn or not.
        let keys: Vec<String> = touched.iter().map(|i| key(epoch, &seat(*i, 0))).collect();
        for k in std::mem::take(&mut self.forgotten) {
            if !keys.contains(&k) {
                self.outbox.push(LogEntry {
                    offset: -1,
                    key: k,
                    value: None,
                });
            }
        }
        for (i, k) in touched.into_iter().zip(keys) {
            let now = written(i, self.state[&i], last);
            let prev = before.get(&i).map(|h| seat(i, *h));
            if matches!(now, StateRecord::Forgotten { .. }) {
                self.forgotten.push(k.clone());
            }
            self.push(k, record(epoch, last, now, prev));
        }
        let (k, v) = marker(epoch, last);
        self.push(k, v);
        self.applied = Some(last);
    }

    fn push(&mut self, key: String, value: ChangelogRecord) {
        self.outbox.push(LogEntry {
            offset: -1,
            key,
            value: Some(value),
        });
    }
}

fn record(
    epoch: i64,
    batch: i64,
    body: StateRecord,
    previous: Option<StateRecord>,
) -> ChangelogRecord {
    ChangelogRecord {
        epoch,
        batch,
        body,
        previous,
    }
}

/// A claim record at offset `o`.
fn claim(o: i64) -> LogEntry {
    LogEntry {
        offset: o,
        key: CLAIM_KEY.into(),
        value: Some(record(
            -1,
            -1,
            StateRecord::Claim { writer: "w".into() },
            None,
        )),
    }
}

/// A tiny deterministic generator for compaction choices.
struct Coin(u64);

impl Coin {
    fn flip(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 & 1 == 1
    }
}

/// What Kafka's cleaner may leave: the latest record of every key, any
/// subset of the older ones, and a tombstone may take its key with it.
fn compact(log: &[LogEntry], coin: &mut Coin) -> Vec<LogEntry> {
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for e in log {
        latest.insert(&e.key, e.offset);
    }
    let dropped_tombstones: std::collections::HashSet<&str> = log
        .iter()
        .filter(|e| e.value.is_none() && latest[e.key.as_str()] == e.offset)
        .filter(|_| coin.flip())
        .map(|e| e.key.as_str())
        .collect();
    log.iter()
        .filter(|e| !dropped_tombstones.contains(e.key.as_str()))
        .filter(|e| latest[e.key.as_str()] == e.offset || coin.flip())
        .cloned()
        .collect()
}

#[derive(Debug, Clone)]
enum Step {
    /// The writer in this slot appends its next record.
    Append(usize, u8),
    /// The writer in this slot crashes (or is paused forever).
    Crash(usize),
    /// A new writer claims the partition in this slot, if it is free.
    Start(usize),
    /// The log cleaner runs.
    Compact(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0..SLOTS, 1u8..=4).prop_map(|(s, b)| Step::Append(s, b)),
        1 => (0..SLOTS).prop_map(Step::Crash),
        2 => (0..SLOTS).prop_map(Step::Start),
        1 => any::<u64>().prop_map(|s| Step::Compact(s | 1)),
    ]
}

fn check(log: &[LogEntry], coin: &mut Coin) {
    for view in [log.to_vec(), compact(log, coin)] {
        let found = fold(view.iter().cloned(), i64::MAX).expect("readable");
        assert_eq!(
            state_of(&found),
            truth(found.applied),
            "restored state differs from the commands it reflects (applied {:?}, epoch {:?})",
            found.applied,
            found.epoch
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn any_interleaving_and_compaction_restores_exactly_the_applied_commands(
        steps in proptest::collection::vec(step(), 1..300),
        seed in any::<u64>(),
    ) {
        let mut coin = Coin(seed | 1);
        let mut log: Vec<LogEntry> = vec![];
        let mut next = 0i64;
        let mut writers: Vec<Option<Writer>> = (0..SLOTS).map(|_| None).collect();
        for step in steps {
            match step {
                Step::Start(s) if writers[s].is_none() => writers[s] = Some(Writer::new()),
                Step::Start(_) => {}
                Step::Crash(s) => writers[s] = None,
                Step::Compact(seed) => log = compact(&log, &mut Coin(seed)),
                Step::Append(s, batch_len) => {
                    let Some(w) = writers[s].as_mut() else { continue };
                    if w.outbox.is_empty() {
                        w.plan(&log, i64::from(batch_len));
                    }
                    if w.dead || w.outbox.is_empty() {
                        continue;
                    }
                    let mut entry = w.outbox.remove(0);
                    entry.offset = next;
                    if entry.key == CLAIM_KEY {
                        w.epoch = Some(next);
                    }
                    next += 1;
                    log.push(entry);
                }
            }
            check(&log, &mut coin);
        }
    }
}

#[test]
fn a_torn_batch_restores_the_values_it_replaced() {
    let e = 5;
    let log = vec![
        claim(5),
        LogEntry {
            offset: 6,
            key: key(e, &seat(1, 9)),
            value: Some(record(e, 3, seat(1, 9), None)),
        },
        LogEntry {
            offset: 7,
            key: marker_key(e),
            value: Some(marker(e, 3).1),
        },
        // Batch 4..=6: seat 1 changes, seat 2 is new; its marker never came.
        LogEntry {
            offset: 8,
            key: key(e, &seat(1, 4)),
            value: Some(record(e, 6, seat(1, 4), Some(seat(1, 9)))),
        },
        LogEntry {
            offset: 9,
            key: key(e, &seat(2, 4)),
            value: Some(record(e, 6, seat(2, 4), Some(seat(2, 0)))),
        },
    ];
    let found = fold(log, i64::MAX).unwrap();
    assert_eq!(found.applied, Some(3));
    assert_eq!(state_of(&found), State::from([(1, 9)]));
}

#[test]
fn a_forgotten_key_is_absent_unless_its_batch_was_torn() {
    let e = 0;
    let gone = StateRecord::Forgotten { at_ms: 1 };
    let mut log = vec![
        claim(0),
        LogEntry {
            offset: 1,
            key: key(e, &seat(1, 9)),
            value: Some(record(e, 2, seat(1, 9), None)),
        },
        LogEntry {
            offset: 2,
            key: marker_key(e),
            value: Some(marker(e, 2).1),
        },
        // Batch 3..=4 forgets seat 1; its marker has not come yet.
        LogEntry {
            offset: 3,
            key: key(e, &seat(1, 9)),
            value: Some(record(e, 4, gone, Some(seat(1, 9)))),
        },
    ];
    let torn = fold(log.clone(), i64::MAX).unwrap();
    assert_eq!(
        state_of(&torn),
        State::from([(1, 9)]),
        "torn: the value it replaced"
    );
    log.push(LogEntry {
        offset: 4,
        key: marker_key(e),
        value: Some(marker(e, 4).1),
    });
    let committed = fold(log, i64::MAX).unwrap();
    assert!(
        committed.state.is_empty(),
        "committed: the key is gone, {committed:?}"
    );
}

#[test]
fn a_newer_complete_namespace_fences_the_restorer_and_older_ones_are_stale() {
    let log = vec![
        claim(0),
        LogEntry {
            offset: 1,
            key: key(0, &seat(1, 9)),
            value: Some(record(0, 2, seat(1, 9), None)),
        },
        LogEntry {
            offset: 2,
            key: marker_key(0),
            value: Some(marker(0, 2).1),
        },
        claim(3),
        claim(4),
        LogEntry {
            offset: 5,
            key: marker_key(4),
            value: Some(marker(4, 2).1),
        },
    ];
    assert_eq!(
        fold(log.clone(), 3),
        Err(FoldError::Superseded { epoch: 4 })
    );
    let found = fold(log, 6).unwrap();
    assert_eq!(found.epoch, Some(4));
    assert!(found.state.is_empty(), "epoch 4's snapshot is what counts");
    assert_eq!(
        found.stale.len(),
        3,
        "both keys of epoch 0 and the marker of epoch 4"
    );
}

#[test]
fn records_from_before_epochs_are_refused_not_guessed() {
    let log = vec![LogEntry {
        offset: 0,
        key: "applied".into(),
        value: Some(marker(-1, 3).1),
    }];
    assert!(matches!(
        fold(log, i64::MAX),
        Err(FoldError::Legacy { offset: 0, .. })
    ));
}

#[test]
fn a_layout_v3_namespace_is_restored_and_retired_under_its_own_keys() {
    // Written by the previous version: `n<epoch>/...`, seats included.
    let v3 = |rest: &str| format!("n0/{rest}");
    let log = vec![
        claim(0),
        LogEntry {
            offset: 1,
            key: v3(&record_key(&seat(1, 9))),
            value: Some(record(0, 2, seat(1, 9), None)),
        },
        LogEntry {
            offset: 2,
            key: v3("applied"),
            value: Some(marker(0, 2).1),
        },
        claim(3),
    ];
    let found = fold(log, 3).unwrap();
    assert_eq!((found.epoch, found.applied), (Some(0), Some(2)));
    assert_eq!(state_of(&found), State::from([(1, 9)]));
    let mut stale = found.stale.clone();
    stale.sort();
    assert_eq!(stale, vec![v3("applied"), v3(&record_key(&seat(1, 9)))]);
}

#[test]
fn this_layout_is_not_mistaken_for_v3_by_the_previous_version() {
    // The previous version parsed `n<epoch>/` as a namespace and refused
    // every other key (except `claim`). A v3 reader that restored from a v4
    // namespace would find no seat records and take every seat for free.
    for k in [key(7, &seat(1, 9)), marker_key(7)] {
        assert!(k.starts_with("v4/7/"), "{k}");
        assert!(!k.starts_with('n') && k != CLAIM_KEY, "{k}");
    }
    assert_eq!(
        parse_key(&marker_key(7)),
        Key::Namespaced {
            layout: LAYOUT,
            epoch: 7,
            rest: "applied"
        }
    );
}
