use thiserror::Error;

/// Errors of the hot cache.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HotCacheError {
    /// Every block holds data that is not yet durable or is being read: retry after a flush.
    #[error("hot cache is full: all {blocks} blocks are pinned by unflushed or in-use data")]
    Full {
        /// Number of blocks in the arena.
        blocks: usize,
    },
    /// The batch can never fit in one block.
    #[error("batch of {len} bytes exceeds the hot cache block size of {block_size} bytes")]
    TooLarge {
        /// Requested length.
        len: usize,
        /// Configured block size.
        block_size: usize,
    },
    /// The configuration cannot produce a usable arena.
    #[error("invalid hot cache configuration: {0}")]
    Config(String),
    /// Creating or mapping the shared-memory file failed.
    #[error("cannot create the hot cache arena: {0}")]
    Arena(#[from] std::io::Error),
}
