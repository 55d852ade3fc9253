use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn cache(budget: u64, largest: u64) -> ColdCache<u64> {
    ColdCache::new(&ColdCacheConfig {
        budget_bytes: budget,
        largest_entry: largest,
    })
}

fn bytes(len: usize, fill: u8) -> Bytes {
    Bytes::from(vec![fill; len])
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn a_second_read_is_a_hit_and_a_failed_load_is_not_cached() {
    block_on(async {
        let cold = cache(1 << 20, 4096);
        let got = cold
            .get_or_load(&1, async { Ok::<_, ()>(bytes(100, 1)) })
            .await
            .unwrap();
        assert_eq!(got, bytes(100, 1));
        let again = cold
            .get_or_load(&1, async { Err::<Bytes, ()>(()) })
            .await
            .unwrap();
        assert_eq!(again, bytes(100, 1));
        assert!(cold.get_or_load(&2, async { Err(()) }).await.is_err());
        assert!(!cold.contains(&2));
        let stats = cold.stats();
        assert_eq!((stats.hits, stats.misses, stats.miss_bytes), (1, 1, 100));
    });
}

#[test]
fn concurrent_misses_of_one_key_load_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let cold = Arc::new(cache(1 << 20, 4096));
    let loads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (cold, loads) = (cold.clone(), loads.clone());
            runtime.spawn(async move {
                cold.get_or_load(&7, async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Ok::<_, ()>(bytes(10, 7))
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(runtime.block_on(reader).unwrap(), bytes(10, 7));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let stats = cold.stats();
    assert_eq!((stats.misses, stats.hits), (1, 7));
}

#[test]
fn prefetched_entries_count_as_used_when_read_and_wasted_when_evicted_unread() {
    block_on(async {
        let cold = cache(10_000, 1_000);
        // A full cache first: entries that arrive while it fills are admitted to the main queue.
        for key in 1000..1020 {
            cold.get_or_load(&key, async { Ok::<_, ()>(bytes(1_000, 0)) })
                .await
                .unwrap();
        }
        assert!(cold
            .prefetch(&1, async { Ok::<_, ()>(bytes(1_000, 1)) })
            .await
            .unwrap());
        assert!(!cold
            .prefetch(&1, async { Ok::<_, ()>(bytes(1_000, 1)) })
            .await
            .unwrap());
        cold.get_or_load(&1, async { Err(()) }).await.unwrap();
        cold.get_or_load(&1, async { Err(()) }).await.unwrap();
        assert!(cold
            .prefetch(&2, async { Ok::<_, ()>(bytes(1_000, 2)) })
            .await
            .unwrap());
        // A scan of other entries pushes the unread prefetch out.
        for key in 100..140 {
            cold.get_or_load(&key, async { Ok::<_, ()>(bytes(1_000, 0)) })
                .await
                .unwrap();
        }
        assert!(!cold.contains(&2));
        let stats = cold.stats();
        assert_eq!(stats.prefetches, 2);
        assert_eq!(stats.prefetch_bytes, 2_000);
        assert_eq!(
            stats.prefetch_used_bytes, 1_000,
            "counted once, however often read"
        );
        assert_eq!(stats.prefetch_wasted_bytes, 1_000);
        assert!(stats.evictions >= 30, "{stats:?}");
    });
}

#[test]
fn a_scan_does_not_flush_an_entry_that_is_read_again() {
    block_on(async {
        let cold = cache(20_000, 1_000);
        for _ in 0..3 {
            cold.get_or_load(&1, async { Ok::<_, ()>(bytes(1_000, 1)) })
                .await
                .unwrap();
        }
        for key in 100..300 {
            cold.get_or_load(&key, async { Ok::<_, ()>(bytes(1_000, 0)) })
                .await
                .unwrap();
            // The reused entry keeps being read, now and then, during the scan.
            if key % 10 == 0 {
                cold.get_or_load(&1, async { Ok::<_, ()>(bytes(1_000, 1)) })
                    .await
                    .unwrap();
            }
        }
        assert!(cold.contains(&1));
        assert_eq!(
            cold.stats().misses,
            1 + 200,
            "the reused entry was loaded once"
        );
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the mix of sizes, demand reads and prefetches, the cache never holds more than
    /// its budget, and every read returns the bytes of its own key.
    #[test]
    fn budget_is_never_exceeded_and_reads_return_their_own_bytes(
        ops in prop::collection::vec((0u64..64, 1usize..3_000, any::<bool>()), 1..300),
        budget in 4_000u64..40_000,
    ) {
        block_on(async {
            let cold = cache(budget, 3_000);
            for (key, len, ahead) in ops {
                // The content is a function of the key alone, so a stale entry would show.
                let len = len + key as usize;
                let load = async move { Ok::<_, ()>(bytes(len, key as u8)) };
                if ahead {
                    cold.prefetch(&key, load).await.unwrap();
                } else {
                    let got = cold.get_or_load(&key, load).await.unwrap();
                    assert!(got.iter().all(|&b| b == key as u8));
                }
                let stats = cold.stats();
                assert!(stats.held_bytes <= budget, "{} > {budget}", stats.held_bytes);
            }
        });
    }
}
