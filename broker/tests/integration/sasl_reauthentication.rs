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
    for user in ["alice", "bob"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hotwire"))
            .args(["users", "--storage"])
            .arg(format!("fs://{}", storage.path().display()))
            .args(["set", user])
            .env("HOTWIRE_USER_PASSWORD", format!("{user}-pa55"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
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
