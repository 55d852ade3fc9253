//! Framing of control messages: `[json len u32 LE][binary len u32 LE][JSON][binary]`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

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

/// The rest of a frame whose header was read.
fn read_body<T: DeserializeOwned>(
    stream: &mut impl Read,
    header: &[u8; HEADER],
    fds: Vec<OwnedFd>,
) -> Result<Frame<T>, RdmaError> {
    let (json, binary) = lengths(header)?;
    let mut body = vec![0u8; json + binary];
    stream
        .read_exact(&mut body)
        .map_err(RdmaError::io("receive frame"))?;
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
    let (json, binary) = lengths(&header)?;
    let mut body = vec![0u8; json + binary];
    stream
        .read_exact(&mut body)
        .await
        .map_err(RdmaError::io("receive frame"))?;
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
