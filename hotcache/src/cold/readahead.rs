//! Adaptive read-ahead for catch-up readers.
//!
//! A reader is recognised as a stream when its next read starts where its last one ended (a
//! Kafka consumer fetches sequentially). Each stream has a window of bytes to load ahead: it starts
//! at `initial_bytes`, doubles on every sequential read up to `max_bytes`, and halves whenever
//! prefetched data was evicted unread since the last read (the cold budget is too short for the
//! readers' windows). A read that continues no stream starts a new one.

use std::collections::HashMap;
use std::hash::Hash;

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
}

impl Default for ReadAheadConfig {
    fn default() -> Self {
        ReadAheadConfig {
            initial_bytes: 1 << 20,
            max_bytes: 16 << 20,
            max_streams: 1024,
        }
    }
}

struct Stream {
    window: u64,
    /// When it was last read (a counter, for forgetting the oldest).
    tick: u64,
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
        let initial = self.config.initial_bytes.min(self.config.max_bytes);
        let window = match state.streams.remove(&(partition, start)) {
            Some(stream) if shrink => stream.window / 2,
            Some(stream) => stream.window.saturating_mul(2).min(self.config.max_bytes),
            None if shrink => initial / 2,
            None => initial,
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
        state
            .streams
            .insert((partition, end), Stream { window, tick });
        window
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
            initial_bytes: 100,
            max_bytes: max,
            max_streams: 4,
        })
    }

    #[test]
    fn a_sequential_reader_grows_its_window_up_to_the_bound() {
        let ra = ahead(1000);
        let windows: Vec<u64> = (0..6)
            .map(|i| ra.on_read(7, i * 10, (i + 1) * 10, 0))
            .collect();
        assert_eq!(windows, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn a_jump_starts_a_new_stream_and_two_readers_keep_their_own_windows() {
        let ra = ahead(1000);
        assert_eq!(ra.on_read(1, 0, 10, 0), 100);
        assert_eq!(ra.on_read(1, 10, 20, 0), 200);
        // A second reader of the same partition, elsewhere.
        assert_eq!(ra.on_read(1, 500, 510, 0), 100);
        assert_eq!(ra.on_read(1, 20, 30, 0), 400);
        assert_eq!(ra.on_read(1, 510, 520, 0), 200);
        assert_eq!(ra.streams(), 2);
    }

    #[test]
    fn wasted_prefetch_halves_the_window() {
        let ra = ahead(1000);
        for i in 0..4 {
            ra.on_read(1, i, i + 1, 0);
        }
        assert_eq!(ra.on_read(1, 4, 5, 0), 1000);
        assert_eq!(ra.on_read(1, 5, 6, 64), 500, "waste seen: halve");
        assert_eq!(ra.on_read(1, 6, 7, 64), 1000, "no new waste: grow again");
        assert_eq!(ra.on_read(1, 7, 8, 65), 500);
    }

    #[test]
    fn off_when_the_bound_is_zero_and_streams_are_bounded() {
        assert_eq!(ahead(0).on_read(1, 0, 1, 0), 0);
        let ra = ahead(1000);
        for p in 0..10 {
            ra.on_read(p, 0, 1, 0);
        }
        assert_eq!(ra.streams(), 4);
        // The newest streams are the ones kept.
        assert_eq!(ra.on_read(9, 1, 2, 0), 200);
    }
}
