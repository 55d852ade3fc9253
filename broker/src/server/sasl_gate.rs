//! The connection's door on SASL listeners: until the client has authenticated, only
//! ApiVersions, SaslHandshake and SaslAuthenticate pass; anything else closes the connection
//! (as Kafka does). SaslHandshake and SaslAuthenticate are answered here on every listener, so
//! the handlers never see them; so are Describe/AlterUserScramCredentials and the ACL APIs,
//! which need the connection's principal and the credential store or the ACLs.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
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

/// One connection's SASL state.
pub struct Gate {
    /// `None` on listeners without SASL.
    authenticator: Option<Authenticator>,
    authenticated: bool,
    failure_delay: Duration,
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
            authenticated: false,
            failure_delay: Duration::from_millis(config.sasl_failed_authentication_delay_ms),
        }
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
        match &request.body {
            RequestKind::SaslHandshake(handshake) => {
                let v1 = request.version >= 1;
                let Some(authenticator) = self
                    .authenticator
                    .as_mut()
                    .filter(|_| !self.authenticated && v1)
                else {
                    let response = SaslHandshakeResponse::default()
                        .with_error_code(ResponseError::IllegalSaslState.code());
                    let reply = answer(ResponseKind::SaslHandshake(response));
                    return Admit::AnswerThenClose(InFlight::Ready(reply));
                };
                let response = authenticator.handshake(handshake.mechanism.as_str());
                let refused = response.error_code != 0;
                let reply = InFlight::Ready(answer(ResponseKind::SaslHandshake(response)));
                if refused {
                    Admit::AnswerThenClose(reply)
                } else {
                    Admit::Answer(reply)
                }
            }
            RequestKind::SaslAuthenticate(authenticate) => {
                let Some(authenticator) =
                    self.authenticator.as_mut().filter(|_| !self.authenticated)
                else {
                    let response = SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::IllegalSaslState.code());
                    let reply = answer(ResponseKind::SaslAuthenticate(response));
                    return Admit::AnswerThenClose(InFlight::Ready(reply));
                };
                match authenticator.authenticate(&authenticate.auth_bytes).await {
                    Step::Continue(response) => Admit::Answer(InFlight::Ready(answer(
                        ResponseKind::SaslAuthenticate(response),
                    ))),
                    Step::Authenticated(principal, response) => {
                        tracing::debug!(peer = ?origin.peer, %principal, "authenticated");
                        broker.events().sasl_authentications.inc();
                        self.authenticated = true;
                        origin.principal = Some(principal.into());
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
            RequestKind::DescribeUserScramCredentials(describe)
                if self.authenticator.is_none() || self.authenticated =>
            {
                let (store, allowed) = user_admin_access(broker, origin, Operation::Describe);
                let describe = describe.clone();
                later(request, async move {
                    let response = user_admin::describe(&*store, describe, allowed).await;
                    ResponseKind::DescribeUserScramCredentials(response)
                })
            }
            RequestKind::AlterUserScramCredentials(alter)
                if self.authenticator.is_none() || self.authenticated =>
            {
                let (store, allowed) = user_admin_access(broker, origin, Operation::Alter);
                let alter = alter.clone();
                later(request, async move {
                    let response = user_admin::alter(&*store, alter, allowed).await;
                    ResponseKind::AlterUserScramCredentials(response)
                })
            }
            RequestKind::CreateAcls(create)
                if self.authenticator.is_none() || self.authenticated =>
            {
                let (acls, access) = (broker.acls().clone(), origin.access(broker.acls()));
                let create = create.clone();
                later(request, async move {
                    ResponseKind::CreateAcls(acl_admin::create(&acls, &access, create).await)
                })
            }
            RequestKind::DeleteAcls(delete)
                if self.authenticator.is_none() || self.authenticated =>
            {
                let (acls, access) = (broker.acls().clone(), origin.access(broker.acls()));
                let delete = delete.clone();
                later(request, async move {
                    ResponseKind::DeleteAcls(acl_admin::delete(&acls, &access, delete).await)
                })
            }
            RequestKind::DescribeAcls(describe)
                if self.authenticator.is_none() || self.authenticated =>
            {
                let access = origin.access(broker.acls());
                let response = acl_admin::describe(broker.acls(), &access, describe.clone());
                Admit::Answer(InFlight::Ready(answer(ResponseKind::DescribeAcls(
                    response,
                ))))
            }
            _ if self.authenticator.is_none() || self.authenticated => Admit::Serve,
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
