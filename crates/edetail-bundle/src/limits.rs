//! Named limits that bound what reading an untrusted bundle may cost.

/// Limits enforced while reading a bundle. Header sizes are only used to refuse early: every
/// limit is enforced again on the bytes actually produced while streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in one archive.
    pub max_entries: usize,
    /// Largest uncompressed entry.
    pub max_entry_size: u64,
    /// Largest uncompressed total.
    pub max_total_size: u64,
    /// Highest uncompressed/compressed ratio for one entry ...
    pub max_ratio: u64,
    /// ... once it is larger than this (small, repetitive text legitimately compresses well).
    pub ratio_free_size: u64,
}

/// Defaults sized for real decks: a 500 MB video, 10 k slides' worth of files, and text that
/// compresses at most ~20x in practice.
pub const DEFAULT_LIMITS: Limits = Limits {
    max_entries: 50_000,
    max_entry_size: 4 * 1024 * 1024 * 1024,
    max_total_size: 8 * 1024 * 1024 * 1024,
    max_ratio: 200,
    ratio_free_size: 1024 * 1024,
};

impl Default for Limits {
    fn default() -> Self {
        DEFAULT_LIMITS
    }
}

impl Limits {
    /// Largest number of bytes an entry with this compressed size may inflate to.
    pub fn ratio_ceiling(&self, compressed_size: u64) -> u64 {
        compressed_size.saturating_mul(self.max_ratio).max(self.ratio_free_size)
    }
}
