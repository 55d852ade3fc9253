//! This broker's session with etcd: a lease, kept alive, and how long it surely lasts.
//!
//! Every right a broker has in the cluster (its registration, the controller role, the shards
//! it leads) hangs on one lease. etcd expires the lease `ttl` after the last keep-alive it
//! *received*; the broker counts from when it *sent* that keep-alive, so its own deadline
//! always falls before etcd's (given clocks that run at the same rate, less a margin for drift).
//! A broker acknowledges writes only before its deadline; the controller moves its shards only
//! after etcd expired the lease. So a paused or cut-off broker has stopped acknowledging before
//! anyone else may take over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::etcd::{Etcd, EtcdError};

/// Part of the TTL kept as a margin for clock drift between this host and etcd's.
const DRIFT_MARGIN: f64 = 0.05;

/// The state of this broker's lease, as last learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseState {
    /// The lease id.
    pub id: i64,
    /// Until when the lease surely exists in etcd.
    pub valid_until: Instant,
    /// False once etcd said the lease is gone (expired or revoked): it never comes back.
    pub alive: bool,
}

impl LeaseState {
    /// Whether the lease surely still exists now.
    pub fn is_valid(&self) -> bool {
        self.alive && Instant::now() < self.valid_until
    }
}

/// A granted lease and the task keeping it alive.
pub struct Lease {
    state: watch::Receiver<LeaseState>,
    stop: CancellationToken,
}

impl Lease {
    /// Grants a lease of `ttl` (whole seconds, at least 1) and keeps it alive every third of
    /// its TTL until dropped or revoked.
    pub async fn grant(etcd: Arc<Etcd>, ttl: Duration) -> Result<Self, EtcdError> {
        let asked = ttl.as_secs().max(1) as i64;
        let sent = Instant::now();
        let (id, granted) = etcd.lease_grant(asked).await?;
        let ttl = Duration::from_secs(granted.max(1) as u64);
        if granted != asked {
            tracing::info!(asked, granted, "etcd granted another lease TTL than asked");
        }
        let (tx, state) = watch::channel(LeaseState {
            id,
            valid_until: deadline(sent, ttl),
            alive: true,
        });
        let stop = CancellationToken::new();
        tokio::spawn(keep_alive(etcd, tx, ttl, stop.clone()));
        Ok(Self { state, stop })
    }

    /// The lease id.
    pub fn id(&self) -> i64 {
        self.state.borrow().id
    }

    /// The current state.
    pub fn state(&self) -> LeaseState {
        *self.state.borrow()
    }

    /// Watches the state (changed at every renewal and when the lease is lost).
    pub fn subscribe(&self) -> watch::Receiver<LeaseState> {
        self.state.clone()
    }

    /// Waits until etcd says the lease is gone. A lease merely past its deadline (etcd out of
    /// reach) is kept: if etcd comes back before expiring it (a restarted etcd restores every
    /// lease with a fresh TTL), this broker goes on with the same rights.
    pub async fn lost(&self) {
        let mut state = self.state.clone();
        while state.borrow_and_update().alive {
            if state.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops renewing the lease, keeping its last state (a process that stopped, as far as
    /// etcd can tell).
    pub fn stop_renewing(&self) {
        self.stop.cancel();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn deadline(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl.mul_f64(1.0 - DRIFT_MARGIN)
}

/// Renews the lease every third of its TTL (a sixth after a failed renewal) until stopped or
/// until etcd says it is gone.
async fn keep_alive(
    etcd: Arc<Etcd>,
    state: watch::Sender<LeaseState>,
    ttl: Duration,
    stop: CancellationToken,
) {
    let id = state.borrow().id;
    let mut wait = ttl / 3;
    let mut failing = Failing::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let sent = Instant::now();
        match etcd.lease_keepalive(id).await {
            Ok(Some(granted)) => {
                let ttl = Duration::from_secs(granted as u64);
                state.send_modify(|s| s.valid_until = deadline(sent, ttl));
                wait = ttl / 3;
                failing.renewed(id);
            }
            Ok(None) => {
                tracing::warn!(
                    lease = id,
                    "etcd lease expired; this broker lost its rights"
                );
                state.send_modify(|s| s.alive = false);
                return;
            }
            Err(error) => {
                let valid = state.borrow().is_valid();
                failing.failed(id, &error, valid);
                wait = ttl / 6;
            }
        }
    }
}

/// How long apart repeated renewal failures are logged.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Renewal failures since the last success, so that an etcd outage is logged when it starts,
/// every few seconds while it lasts and when it ends, rather than at every attempt.
#[derive(Default)]
struct Failing {
    since: Option<Instant>,
    attempts: u64,
    logged: Option<Instant>,
}

impl Failing {
    fn failed(&mut self, id: i64, error: &EtcdError, valid: bool) {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        self.attempts += 1;
        if self
            .logged
            .is_none_or(|at| now.duration_since(at) >= FAILURE_LOG_INTERVAL)
        {
            self.logged = Some(now);
            tracing::warn!(
                lease = id,
                %error,
                valid,
                attempts = self.attempts,
                failing_s = now.duration_since(since).as_secs_f64(),
                "cannot renew the etcd lease"
            );
        }
    }

    fn renewed(&mut self, id: i64) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                lease = id,
                attempts = self.attempts,
                failed_for_s = since.elapsed().as_secs_f64(),
                "etcd lease renewed again"
            );
        }
        *self = Self::default();
    }
}
