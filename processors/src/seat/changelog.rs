//! The seat-state protocol on `seat-changelog`, as pure functions: the keys
//! writers use and the fold a restore runs over whatever the log holds.
//! docs/seat-state-protocol.md states the rules and why they are safe; in
//! short:
//! - a writer opens an ownership **epoch** by appending a `claim` record; the
//!   epoch is that record's offset, so epochs are unique and ordered by the
//!   broker, with no coordination;
//! - every record it writes is keyed inside its epoch's namespace
//!   (`v4/<epoch>/...`), so a writer never overwrites another's keys and a
//!   zombie's late writes can only land in its own, older namespace;
//! - a namespace counts once it has a marker (`v4/<epoch>/applied`), written
//!   only after every record before it was acknowledged; a record of a batch
//!   whose marker is missing stands for the value it replaced (`previous`);
//! - a key that stops existing gets a `Forgotten` value (it carries `batch`
//!   and `previous` like any record, so a torn batch restores the key); only
//!   once that batch's marker is out may a later batch tombstone it;
//! - a restore takes the newest namespace with a marker, older than its own
//!   epoch: whatever subset compaction has kept (the latest record per key),
//!   the result is the state after exactly `applied` commands.

use std::collections::{BTreeMap, HashMap};

use boxoffice_platform::messages::{ChangelogRecord, StateRecord};

use super::store::record_key;

/// Key of every claim record; compaction keeps the newest.
pub const CLAIM_KEY: &str = "claim";
/// The last part of a namespace's marker key.
const MARKER: &str = "applied";
/// Where this layout's namespaces start: `v4/<epoch>/...`. Layout v4 writes
/// no seat records (seats are derived from the bookings), so a version that
/// still reads seats from the changelog must not restore from it: such a
/// version takes these keys for records from before epochs and refuses the
/// partition instead of seeing every seat free.
const LAYOUT: &str = "v4/";
/// The namespaces of layout v3 (`n<epoch>/...`): still read, their seat
/// records ignored.
const LAYOUT_V3: &str = "n";

/// The key of `record` in `epoch`'s namespace.
pub fn key(epoch: i64, record: &StateRecord) -> String {
    namespaced(epoch, &record_key(record))
}

/// The key in `epoch`'s namespace of the state kept locally under `local`.
pub fn key_of(epoch: i64, local: &str) -> String {
    namespaced(epoch, local)
}

/// `epoch`'s marker for commands up to `applied` (-1: none), with its key.
pub fn marker(epoch: i64, applied: i64) -> (String, ChangelogRecord) {
    let record = ChangelogRecord {
        epoch,
        batch: applied,
        body: StateRecord::Applied { offset: applied },
        previous: None,
    };
    (marker_key(epoch), record)
}

/// The key of `epoch`'s marker.
pub fn marker_key(epoch: i64) -> String {
    namespaced(epoch, MARKER)
}

fn namespaced(epoch: i64, rest: &str) -> String {
    format!("{LAYOUT}{epoch}/{rest}")
}

/// What a changelog key is.
#[derive(Debug, PartialEq, Eq)]
enum Key<'a> {
    Claim,
    Namespaced {
        /// The prefix it was written with ([`LAYOUT`] or [`LAYOUT_V3`]).
        layout: &'static str,
        epoch: i64,
        rest: &'a str,
    },
    /// Written before epochs existed (`e/...`, `s/...`, `b/...`, `applied`).
    Legacy,
}

fn parse_key(key: &str) -> Key<'_> {
    if key == CLAIM_KEY {
        return Key::Claim;
    }
    [LAYOUT, LAYOUT_V3]
        .into_iter()
        .find_map(|layout| {
            let (epoch, rest) = key.strip_prefix(layout)?.split_once('/')?;
            Some(Key::Namespaced {
                layout,
                epoch: epoch.parse().ok()?,
                rest,
            })
        })
        .unwrap_or(Key::Legacy)
}

/// One record as read from the changelog, in log order; `value` is `None`
/// for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub offset: i64,
    pub key: String,
    pub value: Option<ChangelogRecord>,
}

/// What a restore found on the changelog.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    /// The epoch whose namespace was restored (`None`: none had a marker).
    pub epoch: Option<i64>,
    /// The last command reflected (`None`: no command yet).
    pub applied: Option<i64>,
    /// The state after exactly the commands up to `applied`, by key.
    pub state: BTreeMap<String, StateRecord>,
    /// Live keys of namespaces older than the restorer's epoch: superseded
    /// once the restorer's own namespace is complete.
    pub stale: Vec<String>,
}

/// Why a restore cannot use the changelog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error(
        "changelog offset {offset} was written before ownership epochs existed (key {key}); \
         this version cannot restore it safely (docs/seat-state-protocol.md, \"Upgrading\")"
    )]
    Legacy { offset: i64, key: String },
    #[error("a newer owner (epoch {epoch}) has completed its namespace: this writer is fenced")]
    Superseded { epoch: i64 },
}

/// Folds a changelog into the state a writer of epoch `mine` restores.
/// `mine` is the restorer's own epoch (`i64::MAX` to just read the newest).
pub fn fold(entries: impl IntoIterator<Item = LogEntry>, mine: i64) -> Result<Found, FoldError> {
    let mut spaces: BTreeMap<i64, Space> = BTreeMap::new();
    for entry in entries {
        match parse_key(&entry.key) {
            Key::Claim => {}
            // A tombstone of an old key only deletes; old values are refused.
            Key::Legacy if entry.value.is_none() => {}
            Key::Legacy => {
                return Err(FoldError::Legacy {
                    offset: entry.offset,
                    key: entry.key,
                });
            }
            Key::Namespaced {
                layout,
                epoch,
                rest,
            } => {
                spaces
                    .entry(epoch)
                    .or_insert_with(|| Space {
                        layout,
                        records: HashMap::new(),
                    })
                    .records
                    .insert(rest.to_owned(), entry.value);
            }
        }
    }
    if let Some((&epoch, _)) = spaces
        .range(mine.saturating_add(1)..)
        .find(|(_, space)| applied_of(space).is_some())
    {
        return Err(FoldError::Superseded { epoch });
    }
    let mut found = Found::default();
    for (epoch, space) in spaces.range(..mine) {
        found.stale.extend(
            space
                .records
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(rest, _)| format!("{}{epoch}/{rest}", space.layout)),
        );
    }
    let Some((epoch, space, applied)) = spaces
        .range(..mine)
        .rev()
        .find_map(|(e, space)| applied_of(space).map(|m| (*e, space, m)))
    else {
        return Ok(found);
    };
    found.epoch = Some(epoch);
    found.applied = (applied >= 0).then_some(applied);
    for (rest, value) in &space.records {
        let Some(record) = value else { continue };
        if rest == MARKER {
            continue;
        }
        // A batch after the marker may be torn: its records stand for the
        // values they replaced.
        let value = if record.batch > applied {
            record.previous.as_ref()
        } else {
            Some(&record.body)
        };
        // A forgotten key is one that does not exist.
        if let Some(v) = value.filter(|v| !matches!(v, StateRecord::Forgotten { .. })) {
            found.state.insert(rest.clone(), v.clone());
        }
    }
    Ok(found)
}

/// One epoch's namespace: the layout it was written in, and the latest
/// record per key (the part after the namespace).
struct Space {
    layout: &'static str,
    records: HashMap<String, Option<ChangelogRecord>>,
}

/// The offset a namespace's marker says it reflects.
fn applied_of(space: &Space) -> Option<i64> {
    match space.records.get(MARKER) {
        Some(Some(ChangelogRecord {
            body: StateRecord::Applied { offset },
            ..
        })) => Some(*offset),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
