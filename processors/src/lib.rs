//! The two stream processors of the booking path.
//!
//! - [`seat`]: applies booking commands to seat maps kept in RocksDB, one
//!   owner per partition, effectively exactly once.
//! - [`reservation`]: turns outcomes into PostgreSQL rows and the Redis
//!   cache, answers the waiting API instance, and drives hold expiry.

pub mod rebalance;
pub mod reservation;
pub mod seat;
