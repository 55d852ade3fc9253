//! Adaptive read-ahead for catch-up readers.
//!
//! A reader is recognised as a stream when its next read starts where its last one ended (a
//! Kafka consumer fetches sequentially). Each stream has a window of bytes to load ahead: it starts
//! at `initial_bytes`, doubles on every sequential read up to `max_bytes`, and halves whenever
//! prefetched data was evicted unread since the last read (the cold budget is too short for the
//! readers' windows); halved below [`MIN_WINDOW`] it stops, and restarts from there once no
//! more waste is seen. A read that continues no stream starts a new one.
//!
//! The windows of all active streams share `total_bytes` (a part of the cold budget): with many
//! readers each gets its share, so what one loads ahead is not evicted by what the others load
//! before it is read. A stream not read for `idle` no longer counts.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Read-ahead bounds.
#[derive(Clone, Debug)]
pub struct ReadAheadConfig {
    /// Window of a new stream, in bytes.
    pub initial_bytes: u64,
    /// Largest window; 0 turns read-ahead off.
    pub max_bytes: u64,
    /// Streams remembered at once (the least recently read are forgotten first).
    pub max_streams: usize,
    /// All active streams' windows together stay within this; 0: no shared bound.
    pub total_bytes: u64,
    /// A stream not read for this long is forgotten (it no longer takes a share).
    pub idle: Duration,
}

impl Default for ReadAheadConfig {
    fn default() -> Self {
        ReadAheadConfig {
            initial_bytes: 1 << 20,
            max_bytes: 16 << 20,
            max_streams: 1024,
            total_bytes: 0,
            idle: Duration::from_secs(10),
        }
    }
}

/// The smallest window: below it a stream stops reading ahead (and restarts at it).
pub const MIN_WINDOW: u64 = 64 << 10;

struct Stream {
    window: u64,
    /// When it was last read (a counter, for forgetting the oldest).
    tick: u64,
    last_read: Instant,
}

struct State<P> {
    /// Streams by (partition, offset their next read is expected at).
    streams: HashMap<(P, i64), Stream>,
    tick: u64,
    /// Wasted prefetch bytes seen at the last read.
    wasted_seen: u64,
}

/// Per-stream read-ahead windows. Shared by all cold readers.
pub struct ReadAhead<P> {
    config: ReadAheadConfig,
    state: Mutex<State<P>>,
}

impl<P: Eq + Hash + Copy> ReadAhead<P> {
    /// No streams yet.
    pub fn new(config: ReadAheadConfig) -> Self {
        ReadAhead {
            config,
            state: Mutex::new(State {
                streams: HashMap::new(),
                tick: 0,
                wasted_seen: 0,
            }),
        }
    }

    /// Records a read of `partition` covering offsets `start..end` and returns how many bytes
    /// past `end` to load ahead. `wasted_bytes` is the cold cache's running count of prefetched
    /// bytes evicted unread ([`super::ColdCacheStats::prefetch_wasted_bytes`]).
    pub fn on_read(&self, partition: P, start: i64, end: i64, wasted_bytes: u64) -> u64 {
        if self.config.max_bytes == 0 {
            return 0;
        }
        let mut state = self.state.lock();
        let shrink = wasted_bytes > state.wasted_seen;
        state.wasted_seen = state.wasted_seen.max(wasted_bytes);
        state.tick += 1;
        let tick = state.tick;
        let now = Instant::now();
        let idle = self.config.idle;
        state
            .streams
            .retain(|_, s| now.saturating_duration_since(s.last_read) < idle);
        let max = self.config.max_bytes;
        let initial = self.config.initial_bytes.min(max);
        let window = match state.streams.remove(&(partition, start)) {
            Some(stream) if shrink => stream.window / 2,
            Some(stream) => stream.window.max(MIN_WINDOW / 2).saturating_mul(2).min(max),
            None if shrink => initial / 2,
            None => initial,
        };
        let window = if window < MIN_WINDOW.min(max) {
            0
        } else {
            window
        };
        if state.streams.len() >= self.config.max_streams.max(1) {
            if let Some(oldest) = state
                .streams
                .iter()
                .min_by_key(|(_, s)| s.tick)
                .map(|(k, _)| *k)
            {
                state.streams.remove(&oldest);
            }
        }
        state.streams.insert(
            (partition, end),
            Stream {
                window,
                tick,
                last_read: now,
            },
        );
        // This stream's share of the total (it is one of the active streams now).
        match self.config.total_bytes {
            0 => window,
            total => window.min(total / state.streams.len() as u64),
        }
    }

    /// Streams remembered now.
    pub fn streams(&self) -> usize {
        self.state.lock().streams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ahead(max: u64) -> ReadAhead<u32> {
        ReadAhead::new(ReadAheadConfig {
            initial_bytes: MIN_WINDOW,
            max_bytes: max,
            max_streams: 4,
            ..ReadAheadConfig::default()
        })
    }

    const K: u64 = MIN_WINDOW;

    #[test]
    fn a_sequential_reader_grows_its_window_up_to_the_bound() {
        let ra = ahead(10 * K);
        let windows: Vec<u64> = (0..6)
            .map(|i| ra.on_read(7, i * 10, (i + 1) * 10, 0))
            .collect();
        assert_eq!(windows, [K, 2 * K, 4 * K, 8 * K, 10 * K, 10 * K]);
    }

    #[test]
    fn a_jump_starts_a_new_stream_and_two_readers_keep_their_own_windows() {
        let ra = ahead(10 * K);
        assert_eq!(ra.on_read(1, 0, 10, 0), K);
        assert_eq!(ra.on_read(1, 10, 20, 0), 2 * K);
        // A second reader of the same partition, elsewhere.
        assert_eq!(ra.on_read(1, 500, 510, 0), K);
        assert_eq!(ra.on_read(1, 20, 30, 0), 4 * K);
        assert_eq!(ra.on_read(1, 510, 520, 0), 2 * K);
        assert_eq!(ra.streams(), 2);
    }

    #[test]
    fn wasted_prefetch_halves_the_window_then_stops_it_then_it_restarts() {
        let ra = ahead(8 * K);
        for i in 0..4 {
            ra.on_read(1, i, i + 1, 0);
        }
        assert_eq!(ra.on_read(1, 4, 5, 0), 8 * K);
        assert_eq!(ra.on_read(1, 5, 6, 64), 4 * K, "waste seen: halve");
        assert_eq!(ra.on_read(1, 6, 7, 64), 8 * K, "no new waste: grow again");
        assert_eq!(ra.on_read(1, 7, 8, 65), 4 * K);
        assert_eq!(ra.on_read(1, 8, 9, 66), 2 * K);
        assert_eq!(ra.on_read(1, 9, 10, 67), K);
        assert_eq!(
            ra.on_read(1, 10, 11, 68),
            0,
            "below the smallest window: stop"
        );
        assert_eq!(
            ra.on_read(1, 11, 12, 69),
            0,
            "stays stopped while waste goes on"
        );
        assert_eq!(ra.on_read(1, 12, 13, 69), K, "no new waste: restart small");
    }

    #[test]
    fn active_streams_share_the_total_and_idle_ones_stop_counting() {
        let ra = ReadAhead::new(ReadAheadConfig {
            initial_bytes: 8 * K,
            max_bytes: 8 * K,
            max_streams: 64,
            total_bytes: 16 * K,
            idle: Duration::from_millis(200),
        });
        assert_eq!(
            ra.on_read(1u32, 0, 10, 0),
            8 * K,
            "one stream: its own bound"
        );
        assert_eq!(ra.on_read(2, 0, 10, 0), 8 * K, "two share 16");
        for p in 3..=8 {
            ra.on_read(p, 0, 10, 0);
        }
        assert_eq!(ra.on_read(1, 10, 20, 0), 2 * K, "eight share 16");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(ra.on_read(1, 20, 30, 0), 8 * K, "the other seven went idle");
        assert_eq!(ra.streams(), 1);
    }

    #[test]
    fn off_when_the_bound_is_zero_and_streams_are_bounded() {
        assert_eq!(ahead(0).on_read(1, 0, 1, 0), 0);
        let ra = ahead(10 * K);
        for p in 0..10 {
            ra.on_read(p, 0, 1, 0);
        }
        assert_eq!(ra.streams(), 4);
        // The newest streams are the ones kept.
        assert_eq!(ra.on_read(9, 1, 2, 0), 2 * K);
    }
}
