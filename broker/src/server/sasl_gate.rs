//! The connection's door on SASL listeners: until the client has authenticated, only
//! ApiVersions, SaslHandshake and SaslAuthenticate pass; anything else closes the connection
//! (as Kafka does). SaslHandshake and SaslAuthenticate are answered here on every listener, so
//! the handlers never see them; so are Describe/AlterUserScramCredentials and the ACL APIs,
//! which need the connection's principal and the credential store or the ACLs.
//!
//! Sessions expire after `connections_max_reauth_ms` when it is set (KIP-368): SaslAuthenticate
//! v1+ tells the client the session's lifetime, the client re-authenticates on the same
//! connection before it ends (SaslHandshake and SaslAuthenticate again, same mechanism, same
//! principal, at most once a second, and only while sessions have a lifetime), and a
//! connection still on an expired session is closed at its next request. While a
//! re-authentication is under way, any request but SaslAuthenticate (or ApiVersions) closes the
//! connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Origin, Service};
use crate::handlers::{InFlight, Reply};
use crate::protocol::{encode_response, Request};
use crate::security::acl::Operation;
use crate::security::sasl::{Authenticator, Step};
use crate::security::{acl_admin, user_admin};

/// What to do with one request.
pub enum Admit {
    /// Serve it.
    Serve,
    /// Answer with this and read on.
    Answer(InFlight),
    /// Answer with this, then close the connection.
    AnswerThenClose(InFlight),
}

/// An authenticated SASL session.
struct Session {
    /// `User:<name>`: a re-authentication must prove the same one.
    principal: String,
    /// The mechanism it authenticated with: a re-authentication must use the same one.
    mechanism: String,
    /// When it ends; `None`: never.
    expires: Option<Instant>,
}

/// One connection's SASL state.
pub struct Gate {
    /// `None` on listeners without SASL.
    authenticator: Option<Authenticator>,
    /// Set once the client authenticated.
    session: Option<Session>,
    /// The mechanism of the handshake in progress.
    handshake_mechanism: Option<String>,
    /// A re-authentication's handshake was accepted and its SaslAuthenticate is awaited; until
    /// it ends only SaslAuthenticate (and ApiVersions) may come, as in Kafka.
    reauthenticating: bool,
    /// When the last re-authentication began: at most one a second (Kafka's limit too), so a
    /// client cannot keep the broker hashing passwords on one connection.
    last_reauthentication: Option<Instant>,
    failure_delay: Duration,
    /// How long a session lasts; `None`: for ever.
    session_lifetime: Option<Duration>,
}

impl Gate {
    /// The gate of a connection to `broker`'s listener number `listener`.
    pub fn new<S: Service>(broker: &S, listener: usize) -> Self {
        let config = broker.config();
        let sasl = config
            .listeners()
            .get(listener)
            .is_some_and(|l| l.protocol.is_sasl());
        let authenticator = sasl.then(|| {
            let enabled: Arc<[String]> = config.sasl_enabled_mechanisms.clone().into();
            Authenticator::new(broker.credentials(), enabled)
        });
        Self {
            authenticator,
            session: None,
            handshake_mechanism: None,
            reauthenticating: false,
            last_reauthentication: None,
            failure_delay: Duration::from_millis(config.sasl_failed_authentication_delay_ms),
            session_lifetime: (config.connections_max_reauth_ms > 0)
                .then(|| Duration::from_millis(config.connections_max_reauth_ms)),
        }
    }

    /// Whether requests other than SASL's own may pass: no SASL here, or a session that is not
    /// re-authenticating.
    fn open(&self) -> bool {
        self.authenticator.is_none() || (self.session.is_some() && !self.reauthenticating)
    }

    /// Whether a handshake on the current session may begin a re-authentication with
    /// `mechanism`: the session has a lifetime (without one there is nothing to renew, and
    /// Kafka refuses too), the mechanism is the session's, none is under way, and the last
    /// began a second ago or more.
    fn may_reauthenticate(&self, session: &Session, mechanism: &str, now: Instant) -> bool {
        session.expires.is_some()
            && session.mechanism == mechanism
            && !self.reauthenticating
            && self
                .last_reauthentication
                .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1))
    }

    /// Whether the session ended without a re-authentication.
    fn expired(&self, now: Instant) -> bool {
        self.session
            .as_ref()
            .and_then(|s| s.expires)
            .is_some_and(|expires| now >= expires)
    }

    /// Whether `request` goes through, or is answered here; `origin` learns the principal.
    pub async fn admit<S: Service>(
        &mut self,
        request: &Request,
        broker: &S,
        origin: &mut Origin,
    ) -> Admit {
        let answer = |response: ResponseKind| match encode_response(
            request.api_key,
            request.version,
            request.correlation_id,
            &response,
        ) {
            Ok(frame) => Reply::Frame(frame),
            Err(_) => Reply::Close,
        };
        let sasl_request = matches!(
            request.body,
            RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_)
        );
        if !sasl_request && self.expired(Instant::now()) {
            // Kafka closes such a connection too; the client reconnects and logs in afresh.
            tracing::info!(peer = ?origin.peer, "SASL session expired without re-authentication; closing");
            broker.events().sasl_sessions_expired.inc();
            return Admit::AnswerThenClose(InFlight::Ready(Reply::Close));
        }
        match &request.body {
            RequestKind::SaslHandshake(handshake) => {
                let mechanism = handshake.mechanism.as_str();
                let now = Instant::now();
                // A second handshake is a re-authentication (KIP-368).
                let reauthentication = self
                    .session
                    .as_ref()
                    .map(|session| self.may_reauthenticate(session, mechanism, now));
                let Some(authenticator) = self
                    .authenticator
                    .as_mut()
                    .filter(|_| request.version >= 1 && reauthentication != Some(false))
                else {
                    let response = SaslHandshakeResponse::default()
                        .with_error_code(ResponseError::IllegalSaslState.code());
                    let reply = answer(ResponseKind::SaslHandshake(response));
                    return Admit::AnswerThenClose(InFlight::Ready(reply));
                };
                if reauthentication == Some(true) {
                    authenticator.restart();
                    self.reauthenticating = true;
                    self.last_reauthentication = Some(now);
                }
                let response = authenticator.handshake(mechanism);
                let refused = response.error_code != 0;
                self.handshake_mechanism = Some(mechanism.to_string());
                let reply = InFlight::Ready(answer(ResponseKind::SaslHandshake(response)));
                if refused {
                    Admit::AnswerThenClose(reply)
                } else {
                    Admit::Answer(reply)
                }
            }
            RequestKind::SaslAuthenticate(authenticate) => {
                let Some(authenticator) = self
                    .authenticator
                    .as_mut()
                    .filter(|_| self.session.is_none() || self.reauthenticating)
                else {
                    let response = SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::IllegalSaslState.code());
                    let reply = answer(ResponseKind::SaslAuthenticate(response));
                    return Admit::AnswerThenClose(InFlight::Ready(reply));
                };
                let step = match authenticator.authenticate(&authenticate.auth_bytes).await {
                    Step::Authenticated(principal, _)
                        if self
                            .session
                            .as_ref()
                            .is_some_and(|session| session.principal != principal) =>
                    {
                        // KIP-368: a connection keeps its principal for life.
                        Step::Failed(
                            SaslAuthenticateResponse::default()
                                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                                .with_error_message(Some(StrBytes::from_static_str(
                                    "re-authentication must not change the principal",
                                ))),
                        )
                    }
                    step => step,
                };
                match step {
                    Step::Continue(response) => Admit::Answer(InFlight::Ready(answer(
                        ResponseKind::SaslAuthenticate(response),
                    ))),
                    Step::Authenticated(principal, response) => {
                        let now = Instant::now();
                        let lifetime = self.session_lifetime;
                        if self.reauthenticating {
                            tracing::debug!(peer = ?origin.peer, %principal, "re-authenticated");
                            broker.events().sasl_reauthentications.inc();
                        } else {
                            tracing::debug!(peer = ?origin.peer, %principal, "authenticated");
                            broker.events().sasl_authentications.inc();
                            origin.principal = Some(principal.clone().into());
                        }
                        self.reauthenticating = false;
                        self.session = Some(Session {
                            principal,
                            mechanism: self.handshake_mechanism.take().unwrap_or_default(),
                            expires: lifetime.map(|lifetime| now + lifetime),
                        });
                        // v0 has no field for it; such clients are closed at expiry all the same.
                        let response = match lifetime {
                            Some(lifetime) if request.version >= 1 => response
                                .with_session_lifetime_ms(
                                    i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX),
                                ),
                            _ => response,
                        };
                        Admit::Answer(InFlight::Ready(answer(ResponseKind::SaslAuthenticate(
                            response,
                        ))))
                    }
                    Step::Failed(response) => {
                        tracing::info!(peer = ?origin.peer, "SASL authentication failed");
                        broker.events().sasl_authentication_failures.inc();
                        let reply = answer(ResponseKind::SaslAuthenticate(response));
                        let delay = self.failure_delay;
                        Admit::AnswerThenClose(InFlight::Running(tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            reply
                        })))
                    }
                }
            }
            RequestKind::DescribeUserScramCredentials(describe) if self.open() => {
                let (store, allowed) = user_admin_access(broker, origin, Operation::Describe);
                let describe = describe.clone();
                later(request, async move {
                    let response = user_admin::describe(&*store, describe, allowed).await;
                    ResponseKind::DescribeUserScramCredentials(response)
                })
            }
            RequestKind::AlterUserScramCredentials(alter) if self.open() => {
                let (store, allowed) = user_admin_access(broker, origin, Operation::Alter);
                let alter = alter.clone();
                later(request, async move {
                    let response = user_admin::alter(&*store, alter, allowed).await;
                    ResponseKind::AlterUserScramCredentials(response)
                })
            }
            RequestKind::CreateAcls(create) if self.open() => {
                let (acls, access) = (broker.acls().clone(), origin.access(broker.acls()));
                let create = create.clone();
                later(request, async move {
                    ResponseKind::CreateAcls(acl_admin::create(&acls, &access, create).await)
                })
            }
            RequestKind::DeleteAcls(delete) if self.open() => {
                let (acls, access) = (broker.acls().clone(), origin.access(broker.acls()));
                let delete = delete.clone();
                later(request, async move {
                    ResponseKind::DeleteAcls(acl_admin::delete(&acls, &access, delete).await)
                })
            }
            RequestKind::DescribeAcls(describe) if self.open() => {
                let access = origin.access(broker.acls());
                let response = acl_admin::describe(broker.acls(), &access, describe.clone());
                Admit::Answer(InFlight::Ready(answer(ResponseKind::DescribeAcls(
                    response,
                ))))
            }
            _ if self.open() => Admit::Serve,
            RequestKind::ApiVersions(_) => Admit::Serve,
            _ => {
                let api: ApiKey = request.api_key;
                tracing::info!(peer = ?origin.peer, ?api, "request before SASL authentication; closing");
                Admit::AnswerThenClose(InFlight::Ready(Reply::Close))
            }
        }
    }
}

/// The credential store, and whether the connection's principal may do `operation` to users:
/// with the authorizer, as the cluster's ACLs say (Kafka: DESCRIBE / ALTER on the cluster);
/// without it, super users only.
fn user_admin_access<S: Service>(
    broker: &S,
    origin: &Origin,
    operation: Operation,
) -> (Arc<dyn crate::security::credentials::CredentialStore>, bool) {
    let access = origin.access(broker.acls());
    let allowed = if access.enforced() {
        access.allows_cluster(operation)
    } else {
        access.is_super_user()
    };
    (broker.credentials(), allowed)
}

/// Answers `request` with what `response` resolves to, in a task of its own.
fn later(
    request: &Request,
    response: impl std::future::Future<Output = ResponseKind> + Send + 'static,
) -> Admit {
    let (api_key, version, correlation_id) =
        (request.api_key, request.version, request.correlation_id);
    Admit::Answer(InFlight::Running(tokio::spawn(async move {
        encode_response(api_key, version, correlation_id, &response.await)
            .map_or(Reply::Close, Reply::Frame)
    })))
}
