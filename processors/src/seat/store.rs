//! The seat-processor's local state in RocksDB.
//!
//! Keys are grouped by Kafka partition (`p00003/...`), because a partition is
//! the unit of ownership: an instance loads, writes and drops the state of
//! whole partitions. Per partition the store keeps, in one atomic write batch
//! with the state itself:
//! - the offset of the last applied command (`#applied`), and
//! - the ownership epoch that wrote it (`#epoch`, docs/seat-state-protocol.md).
//!
//! A restore replaces a partition's state as a whole with what the changelog
//! holds (the changelog is the source of truth; this is its local copy).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use boxoffice_domain::{Booking, BookingId, EventId, EventSpec, SaleState, SeatMap};
use boxoffice_platform::messages::{StateRecord, decode_state, encode_state};
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch};

/// The RocksDB store of one seat-processor instance.
pub struct Store {
    db: DB,
}

/// Where a partition's local state stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Positions {
    /// Offset of the last command applied, if any.
    pub applied: Option<i64>,
    /// The ownership epoch this state was written in, if any.
    pub epoch: Option<i64>,
}

fn prefix(partition: i32) -> String {
    format!("p{partition:05}/")
}

/// Adds a partition's records and positions to `batch`.
fn put_all(
    batch: &mut WriteBatch,
    partition: i32,
    records: &BTreeMap<String, StateRecord>,
    positions: Positions,
) {
    let p = prefix(partition);
    for (key, record) in records {
        match record {
            // Forgotten means absent.
            StateRecord::Forgotten { .. } => batch.delete(format!("{p}{key}")),
            _ => batch.put(format!("{p}{key}"), encode_state(record)),
        }
    }
    for (name, value) in [("#applied", positions.applied), ("#epoch", positions.epoch)] {
        if let Some(v) = value {
            batch.put(format!("{p}{name}"), v.to_be_bytes());
        }
    }
}

/// The key of a state record within its partition; also its key on the
/// compacted changelog, so compaction keeps the latest value of each.
pub fn record_key(record: &StateRecord) -> String {
    match record {
        StateRecord::Event { event_id, .. } => format!("e/{event_id}"),
        // Only read from older layouts; kept apart from every live key.
        StateRecord::Seat {
            event_id, index, ..
        } => format!("s/{event_id}/{index:08}"),
        StateRecord::Booking(b) => booking_key(b.id),
        StateRecord::Applied { .. } => "applied".to_owned(),
        StateRecord::Claim { .. } => "claim".to_owned(),
        StateRecord::Forgotten { .. } => {
            unreachable!("a forgotten record's key comes from what it forgets")
        }
    }
}

/// The key of a booking.
pub fn booking_key(booking: BookingId) -> String {
    format!("b/{booking}")
}

impl Store {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        let db = DB::open(&opts, path)
            .with_context(|| format!("opening RocksDB at {}", path.display()))?;
        Ok(Self { db })
    }

    pub fn positions(&self, partition: i32) -> anyhow::Result<Positions> {
        let read = |name: &str| -> anyhow::Result<Option<i64>> {
            Ok(self
                .db
                .get(format!("{}{name}", prefix(partition)))?
                .map(|v| i64::from_be_bytes(v.as_slice().try_into().unwrap_or([0xff; 8]))))
        };
        Ok(Positions {
            applied: read("#applied")?,
            epoch: read("#epoch")?,
        })
    }

    /// Writes state records and the new positions of a partition atomically.
    pub fn write(
        &self,
        partition: i32,
        records: &BTreeMap<String, StateRecord>,
        positions: Positions,
    ) -> anyhow::Result<()> {
        let mut batch = WriteBatch::default();
        put_all(&mut batch, partition, records, positions);
        self.db.write(batch)?;
        Ok(())
    }

    /// Replaces everything a partition holds with `records` and `positions`,
    /// atomically.
    pub fn replace(
        &self,
        partition: i32,
        records: &BTreeMap<String, StateRecord>,
        positions: Positions,
    ) -> anyhow::Result<()> {
        let p = prefix(partition);
        let mut batch = WriteBatch::default();
        // Keys are `pNNNNN/...`; '0' follows '/' in ASCII, so this is the partition's range.
        batch.delete_range(p.as_bytes(), format!("p{partition:05}0").as_bytes());
        put_all(&mut batch, partition, records, positions);
        self.db.write(batch)?;
        Ok(())
    }

    /// The stored values of `keys` in a partition, in order (`None`: absent).
    pub fn get_many<'k>(
        &self,
        partition: i32,
        keys: impl IntoIterator<Item = &'k String>,
    ) -> anyhow::Result<Vec<Option<StateRecord>>> {
        let p = prefix(partition);
        self.db
            .multi_get(keys.into_iter().map(|k| format!("{p}{k}")))
            .into_iter()
            .map(|v| {
                v?.map(|bytes| decode_state(&bytes).context("corrupt local state"))
                    .transpose()
            })
            .collect()
    }

    /// Loads every seat map of a partition. Its seats are those of its
    /// active bookings; records of seats that older layouts wrote are
    /// ignored.
    pub fn load(&self, partition: i32) -> anyhow::Result<HashMap<EventId, SeatMap>> {
        let p = prefix(partition);
        let mut events: HashMap<EventId, (EventSpec, SaleState, bool, u16)> = HashMap::new();
        let mut bookings: HashMap<EventId, Vec<Booking>> = HashMap::new();
        for item in self
            .db
            .iterator(IteratorMode::From(p.as_bytes(), Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(p.as_bytes()) {
                break;
            }
            if key[p.len()..].starts_with(b"#") {
                continue;
            }
            match decode_state(&value)
                .with_context(|| format!("corrupt state at {}", String::from_utf8_lossy(&key)))?
            {
                StateRecord::Event {
                    event_id,
                    spec,
                    sale,
                    retired,
                    part,
                } => {
                    events.insert(event_id, (spec, sale, retired, part));
                }
                StateRecord::Booking(b) => bookings.entry(b.event_id).or_default().push(b),
                StateRecord::Seat { .. }
                | StateRecord::Applied { .. }
                | StateRecord::Claim { .. }
                | StateRecord::Forgotten { .. } => {}
            }
        }
        events
            .into_iter()
            .map(|(id, (spec, sale, retired, part))| {
                if retired {
                    return Ok((id, SeatMap::retired(id, spec, part, sale)));
                }
                let bookings = bookings.remove(&id).unwrap_or_default();
                let map =
                    SeatMap::from_parts(id, spec, part, sale, bookings).with_context(|| {
                        format!("partition {partition} holds no consistent state for event {id}")
                    })?;
                Ok((id, map))
            })
            .collect()
    }

    /// The partitions the local copy holds anything for.
    pub fn partitions(&self) -> anyhow::Result<Vec<i32>> {
        let mut out = Vec::new();
        let mut from = b"p".to_vec();
        loop {
            let mut it = self
                .db
                .iterator(IteratorMode::From(&from, Direction::Forward));
            let Some(item) = it.next() else { break };
            let (key, _) = item?;
            let Some(p) = key
                .get(1..6)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse::<i32>().ok())
            else {
                break;
            };
            out.push(p);
            // The next partition's keys start after this one's range.
            from = format!("p{p:05}0").into_bytes();
        }
        Ok(out)
    }

    /// RocksDB's own memory and compaction figures, for metrics.
    pub fn property(&self, name: &str) -> Option<u64> {
        self.db.property_int_value(name).ok().flatten()
    }
}
