//! SASL sessions with a lifetime (KIP-368, `--connections-max-reauth-ms`): SaslAuthenticate
//! tells the client the lifetime; a client that re-authenticates on its connection (same
//! mechanism, same principal) keeps it; one that does not is closed at its first request after
//! the session ended; a re-authentication that changes principal or mechanism, comes within a
//! second of the last, or is interleaved with other requests is refused and closes the
//! connection; without a lifetime there is nothing to renew.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::{free_port, scrape_metrics, BrokerProcess, Client};
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const LIFETIME_MS: u64 = 3_000;

/// A broker whose only listener is SASL_PLAINTEXT, with users alice and bob, sessions of
/// `lifetime_ms` (0: no limit) and metrics on.
fn start(lifetime_ms: u64) -> (BrokerProcess, std::net::SocketAddr) {
    let storage = tempfile::tempdir().unwrap();
    crate::common::set_users(storage.path(), &["alice", "bob"]);
    let addr = free_port();
    let metrics = free_port();
    let (listeners, metrics_arg, lifetime) = (
        format!("SASL_PLAINTEXT://{addr}"),
        metrics.to_string(),
        lifetime_ms.to_string(),
    );
    let extra = [
        "--listeners",
        &listeners,
        "--metrics-listen",
        &metrics_arg,
        "--connections-max-reauth-ms",
        &lifetime,
    ];
    (BrokerProcess::start_on(storage, addr, &extra), metrics)
}

fn handshake(client: &mut Client, mechanism: &'static str) -> i16 {
    let response: SaslHandshakeResponse = client.call(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
    );
    response.error_code
}

fn plain(client: &mut Client, user: &str) -> SaslAuthenticateResponse {
    let token = format!("\0{user}\0{user}-pa55");
    client.call(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
    )
}

/// A PLAIN login (or re-login) as `user`: SaslAuthenticate's answer.
fn login(client: &mut Client, user: &str) -> SaslAuthenticateResponse {
    assert_eq!(handshake(client, "PLAIN"), 0);
    plain(client, user)
}

/// Whether a Metadata request is answered (false: the broker closed the connection).
fn served(client: &mut Client) -> bool {
    client.send(ApiKey::Metadata, 12, &MetadataRequest::default());
    client.read_frame().is_some()
}

#[test]
fn sessions_end_at_their_lifetime_unless_the_client_reauthenticates() {
    let (mut broker, metrics) = start(LIFETIME_MS);
    let addr = broker.addr;

    let mut stays = Client::connect(addr);
    let mut lapses = Client::connect(addr);
    for client in [&mut stays, &mut lapses] {
        let answer = login(client, "alice");
        assert_eq!(answer.error_code, 0);
        assert_eq!(answer.session_lifetime_ms, LIFETIME_MS as i64);
    }
    // The broker started `lapses`' session before its answer left; this is later.
    let lapses_ends = Instant::now() + Duration::from_millis(LIFETIME_MS);
    assert!(served(&mut stays) && served(&mut lapses));

    // Half-way through, `stays` re-authenticates: a new lifetime from now.
    sleep(Duration::from_millis(LIFETIME_MS / 2));
    let again = login(&mut stays, "alice");
    assert_eq!(again.error_code, 0);
    assert_eq!(again.session_lifetime_ms, LIFETIME_MS as i64);
    let reauthenticated = Instant::now();
    assert!(served(&mut stays));

    // Past the first lifetime: `lapses` is closed at its next request, `stays` is served.
    sleep((lapses_ends + Duration::from_millis(200)).saturating_duration_since(Instant::now()));
    assert!(!served(&mut lapses), "an expired session was served");
    assert!(served(&mut stays));
    assert!(
        reauthenticated.elapsed() < Duration::from_millis(LIFETIME_MS),
        "too slow to judge: the re-authenticated session may have ended too"
    );

    let counters = scrape_metrics(metrics);
    assert_eq!(counters["hotwire_sasl_reauthentications_total"], 1.0);
    assert_eq!(counters["hotwire_sasl_sessions_expired_total"], 1.0);
    assert!(broker.is_running());
}

#[test]
fn a_reauthentication_keeps_the_principal_and_the_mechanism() {
    let (mut broker, _) = start(LIFETIME_MS);
    let addr = broker.addr;

    // Another principal on the same connection: refused, and the connection closes.
    let mut client = Client::connect(addr);
    assert_eq!(login(&mut client, "alice").error_code, 0);
    assert_eq!(
        login(&mut client, "bob").error_code,
        ResponseError::SaslAuthenticationFailed.code()
    );
    assert!(client.is_closed());

    // Another mechanism: the handshake is refused, and the connection closes.
    let mut client = Client::connect(addr);
    assert_eq!(login(&mut client, "alice").error_code, 0);
    assert_eq!(
        handshake(&mut client, "SCRAM-SHA-256"),
        ResponseError::IllegalSaslState.code()
    );
    assert!(client.is_closed());

    // SaslAuthenticate without a new handshake first: refused too.
    let mut client = Client::connect(addr);
    assert_eq!(login(&mut client, "alice").error_code, 0);
    assert_eq!(
        plain(&mut client, "alice").error_code,
        ResponseError::IllegalSaslState.code()
    );
    assert!(client.is_closed());

    // At most one re-authentication a second.
    let mut client = Client::connect(addr);
    assert_eq!(login(&mut client, "alice").error_code, 0);
    assert_eq!(login(&mut client, "alice").error_code, 0);
    assert_eq!(
        handshake(&mut client, "PLAIN"),
        ResponseError::IllegalSaslState.code()
    );
    assert!(client.is_closed());

    // Between a re-authentication's handshake and its SaslAuthenticate, nothing else.
    let mut client = Client::connect(addr);
    assert_eq!(login(&mut client, "alice").error_code, 0);
    assert_eq!(handshake(&mut client, "PLAIN"), 0);
    assert!(
        !served(&mut client),
        "a request was served mid-re-authentication"
    );

    // A wrong password at re-authentication fails like a first login.
    let mut client = Client::connect(addr);
    assert_eq!(login(&mut client, "alice").error_code, 0);
    assert_eq!(handshake(&mut client, "PLAIN"), 0);
    let wrong: SaslAuthenticateResponse = client.call(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from("\0alice\0guess")),
    );
    assert_eq!(
        wrong.error_code,
        ResponseError::SaslAuthenticationFailed.code()
    );
    assert!(client.is_closed());

    let mut client = Client::connect(addr);
    assert_eq!(login(&mut client, "alice").error_code, 0);
    assert!(served(&mut client));
    assert!(broker.is_running());
}

#[test]
fn without_a_lifetime_sessions_do_not_expire_nor_reauthenticate() {
    let (broker, _) = start(0);
    let mut client = Client::connect(broker.addr);
    let answer = login(&mut client, "alice");
    assert_eq!((answer.error_code, answer.session_lifetime_ms), (0, 0));
    let _: MetadataResponse = client.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    // Nothing to renew: a second handshake is refused, as Kafka does.
    assert_eq!(
        handshake(&mut client, "PLAIN"),
        ResponseError::IllegalSaslState.code()
    );
    assert!(client.is_closed());
}

/// What the randomized client does next.
#[derive(Clone, Copy, Debug)]
enum Step {
    ApiVersions,
    Metadata,
    Handshake(&'static str),
    /// PLAIN bytes: user, and whether the password is right.
    Authenticate(&'static str, bool),
    Sleep(u64),
}

/// Where a connection stands, as the client can know it: times are windows (request sent,
/// answer received) because the broker's clock started somewhere in between.
#[derive(Clone, Copy, Debug)]
enum Phase {
    Fresh,
    Handshaken(&'static str),
    Session {
        /// When the session ends, at the earliest and at the latest.
        expires: (Instant, Instant),
        /// A re-authentication's handshake was accepted.
        reauthenticating: bool,
        /// When the next re-authentication may begin (one second after the last began).
        next_reauthentication: Option<(Instant, Instant)>,
    },
}

/// Mostly what a well-behaved client would do next in `phase`, sometimes anything at all (a
/// sequence of uniformly random steps would hardly ever get past its first login).
fn next_step(rng: &mut crate::crash_trials::Rng, phase: Phase) -> Step {
    let roll = rng.below(100);
    match phase {
        Phase::Fresh | Phase::Handshaken("SCRAM-SHA-256") if roll < 80 => Step::Handshake("PLAIN"),
        Phase::Handshaken(_)
        | Phase::Session {
            reauthenticating: true,
            ..
        } if roll < 80 => Step::Authenticate("alice", true),
        Phase::Session {
            reauthenticating: false,
            ..
        } if roll < 85 => match roll {
            0..=34 => Step::Metadata,
            35..=44 => Step::ApiVersions,
            45..=64 => Step::Handshake("PLAIN"),
            _ => Step::Sleep([200, 700, 1_300][rng.below(3) as usize]),
        },
        _ => random_step(rng),
    }
}

/// Any step.
fn random_step(rng: &mut crate::crash_trials::Rng) -> Step {
    match rng.below(100) {
        0..=9 => Step::ApiVersions,
        10..=29 => Step::Metadata,
        30..=59 => Step::Handshake(match rng.below(10) {
            0..=6 => "PLAIN",
            7..=8 => "SCRAM-SHA-256",
            _ => "BOGUS",
        }),
        60..=84 => match rng.below(20) {
            0..=13 => Step::Authenticate("alice", true),
            14..=16 => Step::Authenticate("alice", false),
            _ => Step::Authenticate("bob", true),
        },
        _ => Step::Sleep([200, 700, 1_300][rng.below(3) as usize]),
    }
}

/// Room either side of a boundary for the broker's own delay in serving a request (a loaded
/// two-core machine running other tests).
const MARGIN: Duration = Duration::from_millis(300);

/// Waits until `now` is clear of every window (with `MARGIN` either side), so that which side
/// of each a request lands on is certain.
fn clear_of(windows: &[(Instant, Instant)]) {
    while let Some(window) = windows.iter().find(|w| {
        let now = Instant::now();
        now + MARGIN > w.0 && now < w.1 + MARGIN
    }) {
        sleep((window.1 + MARGIN).saturating_duration_since(Instant::now()));
    }
}

/// Runs `step` on `client` and checks the broker's answer against `phase`; the next phase, or
/// `None` once the connection is (rightly) closed.
fn run_step(client: &mut Client, phase: Phase, step: Step, lifetime: Duration) -> Option<Phase> {
    use Phase::*;
    // The session's end and the one-a-second rule are judged clear of their boundaries.
    if let Session {
        expires,
        next_reauthentication,
        ..
    } = phase
    {
        let windows: Vec<_> = std::iter::once(expires)
            .chain(next_reauthentication)
            .collect();
        clear_of(&windows);
    }
    let now = Instant::now();
    let expired = matches!(phase, Session { expires, .. } if now > expires.1);
    let closed = |client: &mut Client, what: &str| {
        assert!(client.is_closed(), "{what}: the connection stayed open");
        None
    };
    match step {
        Step::Sleep(ms) => {
            sleep(Duration::from_millis(ms));
            Some(phase)
        }
        Step::ApiVersions => {
            client.send(
                ApiKey::ApiVersions,
                3,
                &kafka_protocol::messages::ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("random"))
                    .with_client_software_version(StrBytes::from_static_str("1")),
            );
            let answered = client.read_frame().is_some();
            assert_eq!(answered, !expired, "ApiVersions in {phase:?}");
            answered.then_some(phase)
        }
        Step::Metadata => {
            let open = matches!(
                phase,
                Session {
                    reauthenticating: false,
                    ..
                }
            ) && !expired;
            assert_eq!(served(client), open, "Metadata in {phase:?}");
            open.then_some(phase)
        }
        Step::Handshake(mechanism) => {
            let sent = Instant::now();
            let code = handshake(client, mechanism);
            let received = Instant::now();
            let accepted = match phase {
                Fresh => mechanism != "BOGUS",
                Handshaken(_) => false,
                Session {
                    reauthenticating,
                    next_reauthentication,
                    ..
                } => {
                    mechanism == "PLAIN"
                        && !reauthenticating
                        && next_reauthentication.is_none_or(|next| now > next.1)
                }
            };
            assert_eq!(
                code == 0,
                accepted,
                "{mechanism} handshake in {phase:?}: {code}"
            );
            if !accepted {
                return closed(client, "a refused handshake");
            }
            Some(match phase {
                Session { expires, .. } => Session {
                    expires,
                    reauthenticating: true,
                    next_reauthentication: Some((
                        sent + Duration::from_secs(1),
                        received + Duration::from_secs(1),
                    )),
                },
                _ => Handshaken(mechanism),
            })
        }
        Step::Authenticate(user, right) => {
            let sent = Instant::now();
            let token = if right {
                format!("\0{user}\0{user}-pa55")
            } else {
                format!("\0{user}\0guess")
            };
            let answer: SaslAuthenticateResponse = client.call(
                ApiKey::SaslAuthenticate,
                2,
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
            );
            let received = Instant::now();
            let accepted = right
                && match phase {
                    Fresh => false,
                    Handshaken(mechanism) => mechanism == "PLAIN",
                    Session {
                        reauthenticating, ..
                    } => reauthenticating && user == "alice",
                };
            assert_eq!(
                answer.error_code == 0,
                accepted,
                "{user} ({right}) in {phase:?}: {answer:?}"
            );
            if !accepted {
                return closed(client, "a refused SaslAuthenticate");
            }
            assert_eq!(answer.session_lifetime_ms, lifetime.as_millis() as i64);
            if matches!(phase, Handshaken(_)) && user != "alice" {
                // Sessions of this test are alice's; bob's first login ends the connection here.
                return None;
            }
            let next_reauthentication = match phase {
                Session {
                    next_reauthentication,
                    ..
                } => next_reauthentication,
                _ => None,
            };
            Some(Session {
                expires: (sent + lifetime, received + lifetime),
                reauthenticating: false,
                next_reauthentication,
            })
        }
    }
}

/// Random sequences of SASL handshakes, logins, re-authentications, other requests and pauses
/// against a model of KIP-368's rules; every answer, and every close, must be the model's.
/// `HOTWIRE_SASL_SEQUENCES` (default 30) and `HOTWIRE_CRASH_SEED` choose how many and which.
#[test]
fn random_sasl_sequences_follow_the_session_rules() {
    let lifetime = Duration::from_millis(1_500);
    let sequences: usize = crate::crash_trials::env_or("HOTWIRE_SASL_SEQUENCES", 30);
    let seed = crate::crash_trials::seed();
    eprintln!("SASL sequences: {sequences}, HOTWIRE_CRASH_SEED={seed}");
    let mut rng = crate::crash_trials::Rng(seed);
    let (mut broker, _) = start(lifetime.as_millis() as u64);
    let mut covered = [0usize; 3];
    for sequence in 0..sequences {
        let mut client = Client::connect(broker.addr);
        let mut phase = Some(Phase::Fresh);
        let mut steps = Vec::new();
        while let Some(now) = phase {
            if steps.len() == 20 {
                break;
            }
            let step = next_step(&mut rng, now);
            steps.push(step);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_step(&mut client, now, step, lifetime)
            }));
            phase = outcome.unwrap_or_else(|_| {
                panic!("sequence {sequence} (HOTWIRE_CRASH_SEED={seed}): steps {steps:?}")
            });
            // What the sequences covered, so that a run that never got far is visible.
            match (now, phase) {
                (
                    Phase::Session {
                        reauthenticating: true,
                        ..
                    },
                    Some(Phase::Session {
                        reauthenticating: false,
                        ..
                    }),
                ) => covered[0] += 1,
                (Phase::Session { expires, .. }, None) if Instant::now() > expires.1 => {
                    covered[1] += 1
                }
                (_, None) => covered[2] += 1,
                _ => {}
            }
        }
    }
    eprintln!(
        "SASL sequences: {} re-authentications, {} closes after expiry, {} other closes",
        covered[0], covered[1], covered[2]
    );
    assert!(
        covered.iter().all(|&c| c > 0),
        "a kind of step never happened: {covered:?}"
    );
    assert!(broker.is_running());
}
