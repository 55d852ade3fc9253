//! One client connection: many requests in flight, responses in request order.
//!
//! The reader decodes frames and spawns a task per request; the task handles are queued in a
//! bounded channel, and the writer awaits them in order. The channel bound is the pipelining
//! depth: a client that sends faster than it reads is slowed by TCP, not buffered without end.
//!
//! A connection that sends nothing and waits for nothing for `connections_max_idle_ms` is
//! closed, and so is one whose partly received request stops growing for
//! `request_read_timeout_ms`: neither can hold a socket and its buffers forever.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frames::{FrameError, FramePermit, FrameReader};
use super::sasl_gate::Admit;
use super::service::Origin;
use super::Service;
use crate::handlers::{self, InFlight, Reply};
use crate::protocol::{decode_request, ProtocolError};

/// Socket reads are buffered this much (per connection, outside the request memory).
const READ_BUFFER_BYTES: usize = 8 << 10;

/// Serves a connection, read from `read` and answered on `out` (the halves of a TCP or TLS
/// stream), until the client leaves, sends something unservable, or shutdown begins.
pub async fn serve<S, R, W>(
    read: R,
    mut out: W,
    origin: Origin,
    broker: Arc<S>,
    shutdown: CancellationToken,
) where
    S: Service,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let peer = origin.peer;
    let mut origin = origin;
    let mut gate = super::sasl_gate::Gate::new(&*broker, origin.listener);
    // Small pipelined requests come in with one read system call, as before: the frame reader
    // itself reads only what the current frame still needs.
    let read = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, read);
    let mut frames = FrameReader::new(
        read,
        broker.config().max_frame_bytes,
        broker.request_memory().clone(),
    );
    let mut timer = Timer::new(broker.config());
    let (queue, mut replies) =
        mpsc::channel::<(InFlight, FramePermit)>(broker.config().max_in_flight_per_connection);

    let writer = async move {
        while let Some((in_flight, permit)) = replies.recv().await {
            let reply = match in_flight {
                InFlight::Ready(reply) => reply,
                InFlight::Running(task) => task.await.unwrap_or_else(|error| {
                    tracing::error!(%error, "request handler failed");
                    Reply::Close
                }),
            };
            // The request is served: its memory goes back before the response is written.
            drop(permit);
            match reply {
                Reply::Frame(frame) => {
                    if let Err(error) = write_frame(&mut out, frame).await {
                        tracing::debug!(%error, "write failed");
                        return;
                    }
                }
                Reply::Nothing => {}
                Reply::Close => return,
            }
        }
    };

    let reader = async move {
        loop {
            let frame = tokio::select! {
                frame = frames.next() => frame,
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(timer.tick) => {
                    // Waiting on the broker: for responses, or for request memory.
                    let waiting = queue.capacity() < queue.max_capacity()
                        || frames.waiting_for_memory();
                    if let Some(why) = timer.check(frames.buffered(), waiting) {
                        tracing::info!(?peer, "closing connection: {why}");
                        return;
                    }
                    continue;
                }
            };
            timer.progress(0);
            let (frame, permit) = match frame {
                Ok(None) => return,
                Ok(Some(frame)) => frame,
                Err(error @ FrameError::TooLarge(_)) => {
                    tracing::warn!(?peer, %error, "bad frame; closing connection");
                    return;
                }
                Err(FrameError::Io(error)) => {
                    tracing::debug!(?peer, %error, "connection lost");
                    return;
                }
            };
            let in_flight = match decode_request(frame) {
                Ok(request) => match gate.admit(&request, &*broker, &mut origin).await {
                    Admit::Serve => broker.clone().start(request, origin.clone()).await,
                    Admit::Answer(in_flight) => in_flight,
                    Admit::AnswerThenClose(in_flight) => {
                        // The reader stops; the writer sends this answer, then closes.
                        let _ = queue.send((in_flight, permit)).await;
                        return;
                    }
                },
                Err(error) => {
                    let reply = reply_to_undecodable(&error);
                    if matches!(reply, Reply::Close) {
                        tracing::warn!(?peer, %error, "closing connection");
                    }
                    InFlight::Ready(reply)
                }
            };
            let close = matches!(in_flight, InFlight::Ready(Reply::Close));
            if queue.send((in_flight, permit)).await.is_err() || close {
                return;
            }
        }
    };

    // The reader ending drops the queue, so the writer finishes what is in flight and stops;
    // the writer ending (closed socket, fatal request) ends the reader too.
    let mut writer = tokio::spawn(writer);
    tokio::select! {
        () = reader => { let _ = writer.await; }
        _ = &mut writer => {}
    }
}

/// Writes `frame` with its length prefix, straight from the response's buffer: no copy is kept
/// per connection, and whatever the frame holds (a fetch's memory budget) lasts until it is
/// written. max_frame_bytes bounds requests only; responses are bounded by their handlers
/// (fetch_max_bytes). The flush sends what TLS buffered (nothing to do on TCP).
async fn write_frame(out: &mut (impl AsyncWrite + Unpin), frame: Bytes) -> std::io::Result<()> {
    let len = u32::try_from(frame.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"))?;
    let mut buf = Bytes::copy_from_slice(&len.to_be_bytes()).chain(frame);
    out.write_all_buf(&mut buf).await?;
    out.flush().await
}

/// When a connection has been quiet or stalled too long.
struct Timer {
    idle: Duration,
    stalled: Duration,
    /// How often the reader looks.
    tick: Duration,
    last_progress: Instant,
    buffered: usize,
}

impl Timer {
    fn new(config: &crate::config::Config) -> Self {
        let idle = Duration::from_millis(config.connections_max_idle_ms);
        let stalled = Duration::from_millis(config.request_read_timeout_ms);
        let tick = (idle.min(stalled) / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        Self {
            idle,
            stalled,
            tick,
            last_progress: Instant::now(),
            buffered: 0,
        }
    }

    /// Something happened: `buffered` bytes of a next request are held.
    fn progress(&mut self, buffered: usize) {
        self.last_progress = Instant::now();
        self.buffered = buffered;
    }

    /// Why the connection should close, given the bytes of an incomplete request held and
    /// whether responses are still pending (the connection then waits on the broker).
    fn check(&mut self, buffered: usize, waiting: bool) -> Option<&'static str> {
        if waiting || buffered != self.buffered {
            self.progress(buffered);
            return None;
        }
        let quiet = self.last_progress.elapsed();
        if buffered == 0 && quiet >= self.idle {
            Some("idle longer than connections_max_idle_ms")
        } else if buffered > 0 && quiet >= self.stalled {
            Some("partial request stalled longer than request_read_timeout_ms")
        } else {
            None
        }
    }
}

/// Kafka answers an unsupported ApiVersions version (so clients can downgrade) and closes the
/// connection for everything else it cannot decode.
fn reply_to_undecodable(error: &ProtocolError) -> Reply {
    match error {
        ProtocolError::UnsupportedVersion {
            api: kafka_protocol::messages::ApiKey::ApiVersions,
            correlation_id,
            ..
        } => handlers::api_versions::unsupported_version(*correlation_id)
            .map_or(Reply::Close, Reply::Frame),
        _ => Reply::Close,
    }
}
