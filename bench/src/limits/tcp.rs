//! Loopback TCP bandwidth: one stream of 1 MiB writes from a thread to a reader thread.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::Bandwidth;
use crate::error::{BenchError, Result};

const BUF: usize = 1 << 20;

/// Streams for `duration` and reports what the reader received.
pub fn probe_loopback(duration: Duration) -> Result<Bandwidth> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(BenchError::io("binding a loopback port for the TCP probe"))?;
    let addr = listener
        .local_addr()
        .map_err(BenchError::io("reading the probe's port"))?;
    let writer = std::thread::Builder::new()
        .name("tcp-probe-writer".into())
        .spawn(move || -> std::io::Result<()> {
            let mut stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            let buf = vec![0x5Au8; BUF];
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline {
                stream.write_all(&buf)?;
            }
            Ok(())
        })
        .map_err(BenchError::io("starting the TCP probe writer"))?;
    let (mut stream, _) = listener
        .accept()
        .map_err(BenchError::io("accepting the TCP probe connection"))?;
    let mut buf = vec![0u8; BUF];
    let mut received = 0u64;
    let start = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BenchError::io("reading in the TCP probe")(e)),
        }
    }
    let elapsed = start.elapsed();
    writer
        .join()
        .map_err(|_| BenchError::Worker("the TCP probe writer panicked".into()))?
        .map_err(BenchError::io("writing in the TCP probe"))?;
    Ok(Bandwidth::new(
        received,
        elapsed,
        "one stream, 1 MiB writes, 127.0.0.1".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_stream_moves_bytes() {
        let bandwidth = probe_loopback(Duration::from_millis(100)).unwrap();
        assert!(bandwidth.bytes > 0);
        assert!(bandwidth.mb_per_s > 0.0);
    }
}
