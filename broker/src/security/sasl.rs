//! One connection's SASL authentication (SaslHandshake v1, then SaslAuthenticate): PLAIN, and
//! SCRAM-SHA-256/512, against the stored SCRAM credentials.
//!
//! What a client is told on failure never says whether the user exists: an unknown user's SCRAM
//! exchange runs to its end with a made-up salt, and PLAIN answers the same failure.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::credentials::CredentialStore;
use super::scram::{self, Mechanism, ScramError, ServerExchange};

/// The SASL mechanisms Hotwire serves.
pub const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// A mechanism chosen at the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chosen {
    Plain,
    Scram(Mechanism),
}

enum State {
    /// Waiting for SaslHandshake.
    Start,
    /// Handshake done, first SaslAuthenticate expected.
    Chosen(Chosen),
    /// SCRAM: the server-first message was sent.
    Scram(Box<ServerExchange>),
    /// Over: authenticated, or failed.
    Done,
}

/// What a SaslAuthenticate led to.
pub enum Step {
    /// More messages to come (SCRAM's first round).
    Continue(SaslAuthenticateResponse),
    /// The client is this principal (`User:<name>`).
    Authenticated(String, SaslAuthenticateResponse),
    /// Refused: answer, then close the connection.
    Failed(SaslAuthenticateResponse),
}

/// One connection's authentication.
pub struct Authenticator {
    store: Arc<dyn CredentialStore>,
    enabled: Arc<[String]>,
    state: State,
}

impl Authenticator {
    /// A connection that must authenticate with one of `enabled` against `store`.
    pub fn new(store: Arc<dyn CredentialStore>, enabled: Arc<[String]>) -> Self {
        Self {
            store,
            enabled,
            state: State::Start,
        }
    }

    /// Starts over for a re-authentication (KIP-368) on a connection that authenticated: the
    /// next SaslHandshake and SaslAuthenticate run a whole new exchange.
    pub fn restart(&mut self) {
        self.state = State::Start;
    }

    /// Answers SaslHandshake. One handshake per authentication.
    pub fn handshake(&mut self, mechanism: &str) -> SaslHandshakeResponse {
        let enabled = self
            .enabled
            .iter()
            .map(|m| StrBytes::from(m.clone()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
        if !matches!(self.state, State::Start) {
            return response.with_error_code(ResponseError::IllegalSaslState.code());
        }
        let chosen = match mechanism {
            "PLAIN" => Some(Chosen::Plain),
            other => Mechanism::from_name(other).map(Chosen::Scram),
        };
        match chosen.filter(|_| self.enabled.iter().any(|m| m == mechanism)) {
            Some(chosen) => {
                self.state = State::Chosen(chosen);
                response
            }
            None => response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
        }
    }

    /// Answers SaslAuthenticate.
    pub async fn authenticate(&mut self, auth_bytes: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Chosen(Chosen::Plain) => self.plain(auth_bytes).await,
            State::Chosen(Chosen::Scram(mechanism)) => {
                self.scram_first(mechanism, auth_bytes).await
            }
            State::Scram(exchange) => {
                let user = exchange.user().to_string();
                let mechanism_name = exchange_mechanism(&exchange);
                match exchange.finish(auth_bytes) {
                    Ok(server_final) => Step::Authenticated(
                        format!("User:{user}"),
                        SaslAuthenticateResponse::default()
                            .with_auth_bytes(Bytes::from(server_final)),
                    ),
                    Err(error) => failed(mechanism_name, &error),
                }
            }
            State::Start | State::Done => Step::Failed(
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate without a SaslHandshake",
                    ))),
            ),
        }
    }

    async fn plain(&mut self, message: &[u8]) -> Step {
        let mut parts = message.split(|b| *b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return failed(
                "PLAIN",
                &ScramError::Malformed("not authzid NUL user NUL password"),
            );
        };
        let Ok(user) = std::str::from_utf8(user) else {
            return failed("PLAIN", &ScramError::Malformed("user is not UTF-8"));
        };
        if !authzid.is_empty() && authzid != user.as_bytes() {
            return failed("PLAIN", &ScramError::BadCredentials);
        }
        // Either SCRAM credential proves the password (the strongest first).
        let mut credential = None;
        for mechanism in Mechanism::ALL.into_iter().rev() {
            match self.store.get(user, mechanism).await {
                Ok(Some(found)) => {
                    credential = Some(found);
                    break;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot read credentials");
                    return failed("PLAIN", &ScramError::BadCredentials);
                }
            }
        }
        let password = password.to_vec();
        let valid = match credential {
            Some(credential) => tokio::task::spawn_blocking(move || credential.matches(&password))
                .await
                .unwrap_or(false),
            None => false,
        };
        if valid {
            Step::Authenticated(format!("User:{user}"), SaslAuthenticateResponse::default())
        } else {
            failed("PLAIN", &ScramError::BadCredentials)
        }
    }

    async fn scram_first(&mut self, mechanism: Mechanism, message: &[u8]) -> Step {
        let user = match scram::user_of(message) {
            Ok(user) => user,
            Err(error) => return failed(mechanism.name(), &error),
        };
        let credential = match self.store.get(&user, mechanism).await {
            Ok(credential) => credential,
            Err(error) => {
                tracing::warn!(%error, "cannot read credentials");
                return failed(mechanism.name(), &ScramError::BadCredentials);
            }
        };
        let mut nonce = [0u8; 24];
        scram::fill_random(&mut nonce);
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        match ServerExchange::start(mechanism, message, credential, &nonce) {
            Ok((exchange, server_first)) => {
                self.state = State::Scram(Box::new(exchange));
                Step::Continue(
                    SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(server_first)),
                )
            }
            Err(error) => failed(mechanism.name(), &error),
        }
    }
}

fn exchange_mechanism(exchange: &ServerExchange) -> &'static str {
    exchange.mechanism().name()
}

fn failed(mechanism: &str, error: &ScramError) -> Step {
    let message = match error {
        ScramError::Malformed(why) => format!("Invalid {mechanism} message: {why}"),
        ScramError::BadCredentials => format!(
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism {mechanism}"
        ),
    };
    Step::Failed(
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
            .with_error_message(Some(StrBytes::from(message))),
    )
}
