//! The memory allocator's own figures, for `/metrics`.
//!
//! The binary allocates with jemalloc (cargo feature `jemalloc`, on by default; `main.rs`)
//! with the options `.cargo/config.toml` compiles in: one arena shared by every thread, whose
//! thread caches keep them from waiting on it, and freed pages returned after about a second.
//! glibc's malloc with one arena (what the service used before) made its threads wait on the
//! arena's lock: at 20,000 msg/s with 8 metrics each the service needed 0.60–0.76 cores, with
//! jemalloc 0.46, at the same RSS (BENCHMARKS.md, "The allocator, the bench's null phase, and
//! the two open targets again"). Without the feature the system
//! allocator is used (heap profilers such as heaptrack follow only that) and these figures
//! are absent.

/// What jemalloc reports, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes the program holds (`stats.allocated`).
    pub allocated: u64,
    /// Bytes in pages the allocator keeps resident (`stats.resident`): the heap's share of
    /// RSS, with what is freed but not yet returned.
    pub resident: u64,
    /// The most arenas threads are spread over (`opt.narenas`).
    pub arenas: u64,
}

/// jemalloc's current figures; `None` without the `jemalloc` feature or when jemalloc cannot
/// say.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
pub fn stats() -> Option<AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, opt, stats};
    // The statistics are a snapshot taken when the epoch advances.
    epoch::advance().ok()?;
    Some(AllocatorStats {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
        arenas: u64::from(opt::narenas::read().ok()?),
    })
}

#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
pub fn stats() -> Option<AllocatorStats> {
    None
}
