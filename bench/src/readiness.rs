//! Starting a broker on a loopback port and knowing when it serves: a port to give it, and a
//! probe that only a Kafka broker passes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// A loopback address whose port was free a moment ago.
///
/// The port is found by binding a socket that never listens: a listening socket, if a child
/// forked by another thread inherited it before its exec, could accept connections meant for
/// the broker. `SO_REUSEADDR` lets the broker bind the port even while such a copy lingers.
pub fn loopback_port() -> std::io::Result<SocketAddr> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("a bound IPv4 socket has no IPv4 address"))
}

/// The correlation id of the probe's request: anything the probe's own bytes are not.
const PROBE_CORRELATION: i32 = 0x0057_1E57;

/// True when a Kafka broker answers an ApiVersions v0 request on `addr` within `timeout`.
///
/// A bare TCP connect proves nothing: a listening socket inherited across another thread's
/// fork, still open until that child execs, completes handshakes on the port, and a connect to
/// a free ephemeral port can meet itself (TCP simultaneous open; it would read back its own
/// request, whose bytes where the correlation id should be are the API key and version).
pub fn answers_kafka(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
    {
        return false;
    }
    let mut request = Vec::with_capacity(14);
    request.extend_from_slice(&10i32.to_be_bytes()); // size of what follows
    request.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    request.extend_from_slice(&0i16.to_be_bytes()); // version 0
    request.extend_from_slice(&PROBE_CORRELATION.to_be_bytes());
    request.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    let mut head = [0u8; 8]; // size, correlation id
    stream.write_all(&request).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head[4..] == PROBE_CORRELATION.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_handed_out_port_can_be_bound_at_once() {
        let addr = loopback_port().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
        // As the broker binds it (std, like tokio, sets SO_REUSEADDR).
        TcpListener::bind(addr).unwrap();
    }

    #[test]
    fn a_listener_that_does_not_speak_kafka_fails_the_probe() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and answers garbage, like a socket that is not a broker.
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 14];
            stream.read_exact(&mut request).unwrap();
            stream.write_all(&[0, 0, 0, 4, 1, 2, 3, 4]).unwrap();
        });
        assert!(!answers_kafka(addr, Duration::from_secs(5)));
        server.join().unwrap();
    }

    #[test]
    fn an_accepted_connection_that_is_never_answered_fails_the_probe() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(!answers_kafka(addr, Duration::from_millis(200)));
        drop(listener);
    }

    #[test]
    fn a_kafka_answer_with_the_probe_correlation_id_passes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 14];
            stream.read_exact(&mut request).unwrap();
            assert_eq!(&request[4..6], &18i16.to_be_bytes());
            let mut response = 6i32.to_be_bytes().to_vec();
            response.extend_from_slice(&request[8..12]);
            response.extend_from_slice(&0i16.to_be_bytes());
            stream.write_all(&response).unwrap();
        });
        assert!(answers_kafka(addr, Duration::from_secs(5)));
        server.join().unwrap();
    }
}
