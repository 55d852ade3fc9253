//! Framing of control messages: `[json len u32 LE][binary len u32 LE][JSON][binary]`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::shm::{recv_with_fds, send_with_fds};
use crate::RdmaError;

/// Largest JSON part accepted.
pub const MAX_JSON: usize = 1 << 20;
/// Largest binary part accepted.
pub const MAX_BINARY: usize = 64 << 20;
const HEADER: usize = 8;

/// One decoded frame.
#[derive(Debug)]
pub struct Frame<T> {
    /// The message.
    pub message: T,
    /// The binary part (empty for most messages).
    pub binary: Vec<u8>,
    /// Descriptors that came with the frame.
    pub fds: Vec<OwnedFd>,
}

fn encode(message: &impl Serialize, binary: &[u8]) -> Result<Vec<u8>, RdmaError> {
    let json = serde_json::to_vec(message).map_err(|e| RdmaError::Protocol(e.to_string()))?;
    if json.len() > MAX_JSON || binary.len() > MAX_BINARY {
        return Err(RdmaError::Protocol("frame too large".into()));
    }
    let mut out = Vec::with_capacity(HEADER + json.len() + binary.len());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&(binary.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(binary);
    Ok(out)
}

fn lengths(header: &[u8; HEADER]) -> Result<(usize, usize), RdmaError> {
    let json = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let binary = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if json == 0 || json > MAX_JSON || binary > MAX_BINARY {
        return Err(RdmaError::Protocol(format!(
            "frame of {json} + {binary} bytes is outside the limits"
        )));
    }
    Ok((json, binary))
}

fn decode<T: DeserializeOwned>(body: &[u8], json: usize) -> Result<(T, Vec<u8>), RdmaError> {
    let message = serde_json::from_slice(&body[..json])
        .map_err(|e| RdmaError::Protocol(format!("bad message: {e}")))?;
    Ok((message, body[json..].to_vec()))
}

/// Writes a frame (blocking), with `fds` attached to its first bytes.
pub fn write_frame(
    stream: &mut UnixStream,
    message: &impl Serialize,
    binary: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), RdmaError> {
    let bytes = encode(message, binary)?;
    let mut sent = 0;
    if !fds.is_empty() {
        sent = send_with_fds(stream.as_fd(), &bytes, fds).map_err(RdmaError::io("send frame"))?;
    }
    stream
        .write_all(&bytes[sent..])
        .map_err(RdmaError::io("send frame"))
}

/// Writes a frame without descriptors (blocking) to any stream: the TCP channel of verbs.
pub fn write_frame_plain(
    stream: &mut impl Write,
    message: &impl Serialize,
    binary: &[u8],
) -> Result<(), RdmaError> {
    let bytes = encode(message, binary)?;
    stream
        .write_all(&bytes)
        .map_err(RdmaError::io("send frame"))
}

/// Reads a frame (blocking) from any stream, without descriptors: the TCP channel of verbs.
pub fn read_frame_plain<T: DeserializeOwned>(
    stream: &mut impl Read,
) -> Result<Frame<T>, RdmaError> {
    let mut header = [0u8; HEADER];
    stream
        .read_exact(&mut header)
        .map_err(RdmaError::io("receive frame"))?;
    read_body(stream, &header, Vec::new())
}

/// What a body buffer starts with: it grows with the bytes that actually arrive, so a header
/// that claims the largest frame and a peer that then sends nothing cost no memory.
const FIRST_CAPACITY: usize = 64 << 10;

/// `body` must hold exactly `expected` bytes.
fn complete(body: &[u8], expected: usize) -> Result<(), RdmaError> {
    if body.len() < expected {
        return Err(RdmaError::io("receive frame")(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        )));
    }
    Ok(())
}

/// The rest of a frame whose header was read.
fn read_body<T: DeserializeOwned>(
    stream: &mut impl Read,
    header: &[u8; HEADER],
    fds: Vec<OwnedFd>,
) -> Result<Frame<T>, RdmaError> {
    let (json, binary) = lengths(header)?;
    let expected = json + binary;
    let mut body = Vec::with_capacity(expected.min(FIRST_CAPACITY));
    stream
        .take(expected as u64)
        .read_to_end(&mut body)
        .map_err(RdmaError::io("receive frame"))?;
    complete(&body, expected)?;
    let (message, binary) = decode(&body, json)?;
    Ok(Frame {
        message,
        binary,
        fds,
    })
}

/// Reads a frame (blocking), collecting descriptors that came with it.
pub fn read_frame<T: DeserializeOwned>(stream: &mut UnixStream) -> Result<Frame<T>, RdmaError> {
    let mut header = [0u8; HEADER];
    let mut fds = Vec::new();
    let mut got = 0;
    while got < HEADER {
        let (n, more) = recv_with_fds(stream.as_fd(), &mut header[got..])
            .map_err(RdmaError::io("receive frame"))?;
        if n == 0 {
            return Err(RdmaError::Protocol("connection closed".into()));
        }
        fds.extend(more);
        got += n;
    }
    read_body(stream, &header, fds)
}

/// Reads a frame from an async stream (the server side; clients send no descriptors).
pub async fn read_frame_async<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Frame<T>, RdmaError> {
    let mut header = [0u8; HEADER];
    stream
        .read_exact(&mut header)
        .await
        .map_err(RdmaError::io("receive frame"))?;
    read_body_async(stream, &header).await
}

/// Like [`read_frame_async`], but once a frame's first byte arrived, the rest must arrive
/// within `stall`: a peer cannot hold a half-sent frame open forever. Waiting for the first
/// byte is not bounded (an idle session is the caller's to judge).
pub async fn read_frame_async_within<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
    stall: Duration,
) -> Result<Frame<T>, RdmaError> {
    let mut header = [0u8; HEADER];
    stream
        .read_exact(&mut header[..1])
        .await
        .map_err(RdmaError::io("receive frame"))?;
    let rest = async {
        stream
            .read_exact(&mut header[1..])
            .await
            .map_err(RdmaError::io("receive frame"))?;
        read_body_async(stream, &header).await
    };
    tokio::time::timeout(stall, rest)
        .await
        .map_err(|_| RdmaError::Protocol(format!("a frame stalled for longer than {stall:?}")))?
}

/// The rest of a frame whose header was read (async).
async fn read_body_async<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
    header: &[u8; HEADER],
) -> Result<Frame<T>, RdmaError> {
    let (json, binary) = lengths(header)?;
    let expected = json + binary;
    let mut body = Vec::with_capacity(expected.min(FIRST_CAPACITY));
    stream
        .take(expected as u64)
        .read_to_end(&mut body)
        .await
        .map_err(RdmaError::io("receive frame"))?;
    complete(&body, expected)?;
    let (message, binary) = decode(&body, json)?;
    Ok(Frame {
        message,
        binary,
        fds: Vec::new(),
    })
}

/// Writes a frame without descriptors to an async stream (any transport).
pub async fn write_frame_async_plain(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &impl Serialize,
    binary: &[u8],
) -> Result<(), RdmaError> {
    let bytes = encode(message, binary)?;
    stream
        .write_all(&bytes)
        .await
        .map_err(RdmaError::io("send frame"))
}

/// Writes a frame to an async Unix stream, with `fds` attached to its first bytes.
pub async fn write_frame_async(
    stream: &mut tokio::net::UnixStream,
    message: &impl Serialize,
    binary: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), RdmaError> {
    let bytes = encode(message, binary)?;
    let mut sent = 0;
    if !fds.is_empty() {
        loop {
            stream
                .writable()
                .await
                .map_err(RdmaError::io("send frame"))?;
            match stream.try_io(tokio::io::Interest::WRITABLE, || {
                send_with_fds(stream.as_fd(), &bytes, fds)
            }) {
                Ok(n) => {
                    sent = n;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(RdmaError::io("send frame")(e)),
            }
        }
    }
    stream
        .write_all(&bytes[sent..])
        .await
        .map_err(RdmaError::io("send frame"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Request;

    fn header(json: usize, binary: usize) -> Vec<u8> {
        let mut bytes = (json as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&(binary as u32).to_le_bytes());
        bytes
    }

    #[test]
    fn a_frame_cut_short_is_an_end_of_file_not_a_frame() {
        let mut bytes = header(MAX_JSON, MAX_BINARY);
        bytes.extend_from_slice(b"{}");
        let error = read_frame_plain::<Request>(&mut &bytes[..]).unwrap_err();
        assert!(
            matches!(&error, RdmaError::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_frame_that_stalls_after_its_first_byte_times_out() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(&header(100, 0)[..3]).await.unwrap();
        let read = read_frame_async_within::<Request>(&mut server, Duration::from_millis(50)).await;
        let error = read.unwrap_err();
        assert!(error.to_string().contains("stalled"), "{error}");

        // A whole frame passes.
        let (mut client, mut server) = tokio::io::duplex(1024);
        write_frame_async_plain(&mut client, &Request::Persist, &[])
            .await
            .unwrap();
        let frame = read_frame_async_within::<Request>(&mut server, Duration::from_millis(50))
            .await
            .unwrap();
        assert!(matches!(frame.message, Request::Persist));
    }
}
