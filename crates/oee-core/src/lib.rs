//! The domain crate: processing rules, tag normalizer, OEE windows, MTTR/MTBF and the fault
//! tracker. Pure code with no I/O and no clock reads (see `docs/architecture.md`).

pub mod calendar;
mod compact;
pub mod config;
pub mod counters;
pub mod faults;
pub mod intervals;
pub mod kpi;
pub mod normalize;
pub mod types;
pub mod windows;
