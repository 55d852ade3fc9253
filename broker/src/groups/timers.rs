//! One background task that wakes at the nearest group deadline.
//!
//! Groups push `(deadline, group id)` entries; the task sleeps until the earliest, then hands
//! the due group ids to the coordinator, which expires whatever is due in each group and pushes
//! that group's next deadline. Entries are hints: a group whose deadline moved later (a
//! heartbeat) is simply looked at once for nothing, which keeps heartbeats from touching the
//! heap at all.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The deadline heap shared by the coordinator and its timer task.
#[derive(Debug, Default)]
pub struct Timers {
    heap: Mutex<BinaryHeap<Reverse<(Instant, String)>>>,
    wake: Notify,
    closed: AtomicBool,
}

impl Timers {
    /// Asks for `group_id` to be looked at once `at` has passed.
    pub fn schedule(&self, at: Instant, group_id: &str) {
        let mut heap = self.heap.lock();
        let earliest = heap.peek().map(|Reverse((when, _))| *when);
        heap.push(Reverse((at, group_id.to_string())));
        drop(heap);
        if earliest.is_none_or(|earliest| at < earliest) {
            // `notify_one` keeps a permit if the task is not waiting yet, so no wake-up is lost.
            self.wake.notify_one();
        }
    }

    /// Removes and returns the ids of groups due at `now`, each once.
    pub fn take_due(&self, now: Instant) -> Vec<String> {
        let mut heap = self.heap.lock();
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse((when, _))| *when <= now) {
            if let Some(Reverse((_, id))) = heap.pop() {
                if !due.contains(&id) {
                    due.push(id);
                }
            }
        }
        due
    }

    /// The earliest deadline pending.
    pub fn next(&self) -> Option<Instant> {
        self.heap.lock().peek().map(|Reverse((when, _))| *when)
    }

    /// Stops the task (the coordinator is gone).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Runs until [`Timers::close`] or until `fire` returns false (the coordinator is gone), calling
/// `fire` with every group id whose deadline has passed.
pub async fn run(timers: Arc<Timers>, fire: impl Fn(&str) -> bool) {
    loop {
        if timers.is_closed() {
            return;
        }
        match timers.next() {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = timers.wake.notified() => {}
                }
            }
            None => timers.wake.notified().await,
        }
        for group_id in timers.take_due(Instant::now()) {
            if !fire(&group_id) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn fires_each_due_group_once_in_deadline_order() {
        let timers = Arc::new(Timers::default());
        let fired = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let fired = fired.clone();
            tokio::spawn(run(timers.clone(), move |id| {
                fired.lock().push((id.to_string(), Instant::now()));
                true
            }))
        };
        let start = Instant::now();
        timers.schedule(start + Duration::from_millis(300), "late");
        timers.schedule(start + Duration::from_millis(100), "early");
        timers.schedule(start + Duration::from_millis(100), "early");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let fired = fired.lock().clone();
        let names: Vec<&str> = fired.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(names, ["early", "late"]);
        assert_eq!(fired[0].1 - start, Duration::from_millis(100));
        timers.close();
        task.await.unwrap();
    }
}
