//! What every one-sided session does, whatever its provider: admission, then requests
//! answered in order until the client leaves.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdma::control::{self, GroupMember, Login, QpAddress, Request, Response, PROTOCOL_VERSION};
use rdma::shm::SharedRing;
use rdma::RdmaError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::handlers;
use super::persist::JoinedSlots;
use super::slot_holds::SlotHolds;
use crate::broker::Broker;
use crate::security::acl::{Access, Operation, ResourceType};
use crate::security::sasl::{Authenticator, Step};
use crate::server::Service;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until `shutdown`, running `session` (given the stream and a session
/// number for the logs) on a task of its own for each; shutdown ends the sessions too. At most
/// `limit` sessions (of every provider together, through the shared `sessions` budget) run at
/// once: a connection beyond is closed at once.
pub(super) async fn accept_sessions<S, A, F>(
    provider: &'static str,
    mut accept: impl FnMut() -> A,
    shutdown: CancellationToken,
    sessions: Arc<Semaphore>,
    session: impl Fn(S, u64) -> F,
) where
    A: Future<Output = std::io::Result<S>>,
    F: Future<Output = Result<(), RdmaError>> + Send + 'static,
{
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = accept() => match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, provider, "rdma control accept failed");
                    continue;
                }
            },
        };
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            tracing::warn!(
                provider,
                "rdma session refused: max_one_sided_sessions reached"
            );
            drop(stream);
            continue;
        };
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let work = session(stream, id);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                outcome = work => match outcome {
                    Ok(()) => tracing::debug!(session = id, provider, "rdma session closed"),
                    Err(error) => tracing::info!(session = id, provider, %error, "rdma session ended"),
                },
            }
        });
    }
}

/// Who a session is, once admitted.
pub(super) struct Admitted {
    /// The client's id (logged).
    pub client_id: String,
    /// Its queue pair's address, if it brought one (verbs).
    #[cfg_attr(not(feature = "verbs"), allow(dead_code))]
    pub qp: Option<QpAddress>,
    /// `User:<name>` when it logged in; `None`: `User:ANONYMOUS`, as on a plaintext listener.
    pub principal: Option<Arc<str>>,
    /// The address ACLs are matched against: the peer's IP (verbs), 127.0.0.1 (shm: the same
    /// host).
    pub host: String,
    /// Whether the session may READ the HotCache arena itself: it holds every topic's hot
    /// batches and one-sided READs cannot be told apart by topic, so only a principal that may
    /// read every topic gets it (everyone without the authorizer). Judged at admission: the
    /// grant cannot be taken back from a mapped region, so a later ACL change reaches it when
    /// the session ends.
    pub reads_cache: bool,
    /// Whether the principal may commit for every group on every topic: on shm the offset
    /// table is one mapping (per-slot grants are the client library's, not the kernel's), so
    /// only such a session gets it there (everyone without the authorizer).
    pub commits_anywhere: bool,
    /// Whether this session may join offset slots (set by the provider: verbs grants each
    /// slot as a NIC-enforced window, shm only with `commits_anywhere`).
    pub joins_slots: bool,
}

impl Admitted {
    /// Logs the opening of session `id` of `provider`.
    pub fn log_opened(&self, id: u64, provider: &str) {
        tracing::info!(
            session = id,
            provider,
            client = %self.client_id,
            principal = self.principal.as_deref().unwrap_or("User:ANONYMOUS"),
            reads_cache = self.reads_cache,
            joins_slots = self.joins_slots,
            "rdma session opened"
        );
    }

    /// What the session may do under the ACLs in force now.
    pub fn access(&self, broker: &Broker) -> Access {
        broker
            .acls
            .access_of(self.principal.clone(), || self.host.clone())
    }
}

/// Reads the client's `Hello` and admits it (or answers the refusal and fails). `host` is the
/// client's address for the ACLs.
pub(super) async fn hello(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    broker: &Broker,
    host: String,
) -> Result<Admitted, RdmaError> {
    // An unadmitted connection gets as long as a half-sent Kafka request, no longer.
    let stall = stall_limit(broker);
    let frame = tokio::time::timeout(stall, control::read_frame_async::<Request>(stream))
        .await
        .map_err(|_| RdmaError::Protocol(format!("no Hello within {stall:?}")))?
        // The decoder's message may quote the frame, and a Hello may carry a password.
        .map_err(|error| match error {
            RdmaError::Protocol(_) => RdmaError::Protocol("malformed Hello".into()),
            other => other,
        })?;
    let Request::Hello {
        version,
        client_id,
        token,
        login,
        qp,
    } = frame.message
    else {
        return Err(RdmaError::Protocol(
            "the first request must be Hello".into(),
        ));
    };
    let admitted = match admit(broker, version, token.as_deref()) {
        Ok(()) => log_in(broker, login).await,
        Err(reason) => Err(reason),
    };
    match admitted {
        Ok(principal) => {
            let mut admitted = Admitted {
                client_id,
                qp,
                principal,
                host,
                reads_cache: false,
                commits_anywhere: false,
                joins_slots: false,
            };
            let access = admitted.access(broker);
            admitted.reads_cache = access.allows_every(Operation::Read, ResourceType::Topic);
            admitted.commits_anywhere =
                admitted.reads_cache && access.allows_every(Operation::Read, ResourceType::Group);
            Ok(admitted)
        }
        Err(reason) => {
            let refusal = Response::Error {
                message: reason.clone(),
            };
            control::write_frame_async_plain(stream, &refusal, &[]).await?;
            Err(RdmaError::Refused(reason))
        }
    }
}

/// Checks a login as a SASL PLAIN login over TCP is checked (same credential store, same
/// counters, same delay before a refusal): the principal, or why not.
async fn log_in(broker: &Broker, login: Option<Login>) -> Result<Option<Arc<str>>, String> {
    let Some(login) = login else {
        return Ok(None);
    };
    // PLAIN whatever the SASL listeners offer: only the password check is shared.
    let mut authenticator =
        Authenticator::new(broker.credentials(), Arc::from(["PLAIN".to_string()]));
    let _ = authenticator.handshake("PLAIN");
    let token = format!("\0{}\0{}", login.user, login.password);
    match authenticator.authenticate(token.as_bytes()).await {
        Step::Authenticated(principal, _) => {
            broker.events.sasl_authentications.inc();
            tracing::debug!(%principal, "one-sided session logged in");
            Ok(Some(principal.into()))
        }
        Step::Continue(_) | Step::Failed(_) => {
            broker.events.sasl_authentication_failures.inc();
            tracing::info!("one-sided session login failed");
            tokio::time::sleep(Duration::from_millis(
                broker.config.sasl_failed_authentication_delay_ms,
            ))
            .await;
            Err("authentication failed: wrong user name or password".into())
        }
    }
}

/// How long the rest of a started frame may take (`request_read_timeout_ms`, as on TCP).
fn stall_limit(broker: &Broker) -> Duration {
    Duration::from_millis(broker.config.request_read_timeout_ms)
}

/// The authentication hook: the protocol version, and the token if one is configured.
fn admit(broker: &Broker, version: u32, token: Option<&str>) -> Result<(), String> {
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {version} is not served (this broker speaks {PROTOCOL_VERSION})"
        ));
    }
    match (&broker.config.rdma_token, token) {
        (None, _) => Ok(()),
        (Some(expected), Some(given)) if token_matches(expected, given) => Ok(()),
        (Some(_), _) => Err("authentication failed: wrong or missing token".into()),
    }
}

/// Compares in time independent of where the first difference lies, so that response times
/// do not reveal how much of a guess was right (only whether the length was).
fn token_matches(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// How often a session's grants are judged again against the ACLs in force.
const RECHECK: Duration = Duration::from_secs(1);

/// One `Join` answered: the slots of `group` for `topic` that the session holds, and the
/// member it joined as.
#[derive(PartialEq)]
struct JoinedGroup {
    group: String,
    topic: String,
    member: Option<GroupMember>,
}

/// Answers requests until the client closes the connection. `on_response` may complete a
/// response with what only the provider knows (the memory windows of `Joined` on verbs); an
/// error it returns is answered as the request's failure and ends the session. Every second,
/// before each request, and whenever a group's generation or state changes, what the session
/// was granted (the arena, the offset table, its joined slots) is judged again: a session
/// whose principal lost a right it holds a grant for, or whose joined member may no longer
/// commit (a rebalance moved the group to a new generation, the member left or expired, the
/// group was deleted), is ended, which revokes its windows on verbs.
pub(super) async fn answer_requests(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    broker: &Broker,
    admitted: &Admitted,
    joined: &JoinedSlots,
    holds: &SlotHolds<'_>,
    ring: &SharedRing,
    mut on_response: impl FnMut(&mut Response) -> Result<(), RdmaError>,
) -> Result<(), RdmaError> {
    let stall = stall_limit(broker);
    // Every Join answered: the slots this session holds grants on, and who for.
    let mut joins: Vec<JoinedGroup> = Vec::new();
    let mut recheck = tokio::time::interval(RECHECK);
    let mut group_changes = broker.groups.changes();
    let mut groups_open = true;
    loop {
        let frame = {
            // One read across the rechecks: it is not cancel-safe, and is dropped only when
            // the session ends.
            let read = control::read_frame_async_within::<Request>(stream, stall);
            tokio::pin!(read);
            loop {
                tokio::select! {
                    frame = &mut read => break Ok(frame),
                    _ = recheck.tick() => {
                        if let Some(reason) = withdrawn(broker, &admitted.access(broker), admitted, &joins) {
                            break Err(reason);
                        }
                    }
                    changed = group_changes.changed(), if groups_open && !joins.is_empty() => {
                        groups_open = changed.is_ok();
                        if let Some(reason) = fenced(broker, &joins) {
                            break Err(reason);
                        }
                    }
                }
            }
        };
        let frame = match frame {
            // Told to the client (as the answer to its next request), then closed.
            Err(reason) => return end_revoked(stream, admitted, reason).await,
            Ok(frame) => frame,
        };
        let frame = match frame {
            Ok(frame) => frame,
            // The client went away.
            Err(RdmaError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        // One judgement of the ACLs per request, for the grants and for the request itself.
        let access = admitted.access(broker);
        if let Some(reason) = withdrawn(broker, &access, admitted, &joins) {
            return end_revoked(stream, admitted, reason).await;
        }
        let joining = match &frame.message {
            Request::Join {
                group,
                topic,
                member,
                ..
            } => Some(JoinedGroup {
                group: group.clone(),
                topic: topic.clone(),
                member: member.clone(),
            }),
            _ => None,
        };
        let (mut response, binary) = match &frame.message {
            Request::Join { .. } if !admitted.joins_slots => (
                Response::Error {
                    message: format!(
                        "GROUP_AUTHORIZATION_FAILED: {} may not commit for every group on \
                         every topic, which the shared offset table of an shm session would \
                         allow; commit over TCP",
                        access.principal()
                    ),
                },
                Vec::new(),
            ),
            // Persist makes every session's changed slots durable: only for a session that
            // holds some.
            Request::Persist if access.enforced() && joins.is_empty() => (
                Response::Error {
                    message: "Persist before any Join".into(),
                },
                Vec::new(),
            ),
            _ => {
                let rights = handlers::Rights {
                    access: &access,
                    reads_cache: admitted.reads_cache,
                };
                handlers::handle(broker, rights, joined, holds, ring, frame.message).await
            }
        };
        if let (Some(join), Response::Joined { .. }) = (joining, &response) {
            if !joins.contains(&join) {
                joins.push(join);
            }
        }
        let fatal = on_response(&mut response).err();
        if let Some(error) = &fatal {
            response = Response::Error {
                message: error.to_string(),
            };
        }
        control::write_frame_async_plain(stream, &response, &binary).await?;
        if let Some(error) = fatal {
            return Err(error);
        }
    }
}

/// Tells the client why its session ends (as the answer to its next request) and ends it.
async fn end_revoked(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    admitted: &Admitted,
    reason: String,
) -> Result<(), RdmaError> {
    tracing::info!(client = %admitted.client_id, %reason, "rdma session revoked");
    let refusal = Response::Error {
        message: reason.clone(),
    };
    control::write_frame_async_plain(stream, &refusal, &[]).await?;
    Err(RdmaError::Refused(reason))
}

/// Why the session's grants no longer hold, if they do not: the ACLs in force, or the groups
/// its slots were joined for.
fn withdrawn(
    broker: &Broker,
    access: &Access,
    admitted: &Admitted,
    joins: &[JoinedGroup],
) -> Option<String> {
    revoked(access, admitted, joins).or_else(|| fenced(broker, joins))
}

/// Why a joined member may no longer commit, if it may not: judged as an OffsetCommit from it
/// would be now (Kafka's fencing of a member by generation), so that a member that a
/// rebalance left behind cannot go on committing with fetch-and-add.
fn fenced(broker: &Broker, joins: &[JoinedGroup]) -> Option<String> {
    joins.iter().find_map(|join| {
        let (generation, member_id, instance) = join.member.as_ref().map_or((-1, "", None), |m| {
            (
                m.generation_id,
                m.member_id.as_str(),
                m.group_instance_id.as_deref(),
            )
        });
        let error = broker
            .groups
            .may_commit(&join.group, generation, member_id, instance)
            .err()
            // A group being deleted (it has no members then): its slots stay quarantined
            // while held (see `OffsetTable::remove`), and commits to them reach no one.
            .filter(|e| *e != kafka_protocol::ResponseError::CoordinatorNotAvailable)?;
        Some(format!(
            "{error:?} (Kafka error {}): member {member_id:?} of group {:?} at generation \
             {generation} may no longer commit (the group moved on), so the session's offset \
             slots are revoked; open a new session and join again",
            error.code(),
            join.group
        ))
    })
}

/// Why the session's grants no longer hold under `access` (the ACLs in force), if they do not.
fn revoked(access: &Access, admitted: &Admitted, joins: &[JoinedGroup]) -> Option<String> {
    if !access.enforced() {
        return None;
    }
    let principal = access.principal();
    if admitted.reads_cache && !access.allows_every(Operation::Read, ResourceType::Topic) {
        return Some(format!(
            "ACLs changed: {principal} may no longer read every topic (the cache region)"
        ));
    }
    if admitted.commits_anywhere && !access.allows_every(Operation::Read, ResourceType::Group) {
        return Some(format!(
            "ACLs changed: {principal} may no longer commit for every group (the offset table)"
        ));
    }
    joins
        .iter()
        .map(|join| (&join.group, &join.topic))
        .find(|(group, topic)| {
            !access.allows(Operation::Read, ResourceType::Group, group)
                || !access.allows(Operation::Read, ResourceType::Topic, topic)
        })
        .map(|(group, topic)| {
            format!(
                "ACLs changed: {principal} may no longer commit for group {group} on topic {topic}"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cret", "s3creT"));
        assert!(!token_matches("s3cret", "s3cre"));
        assert!(!token_matches("s3cret", ""));
    }
}
