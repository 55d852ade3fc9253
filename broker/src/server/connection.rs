//! One client connection: many requests in flight, responses in request order.
//!
//! The reader decodes frames and spawns a task per request; the task handles are queued in a
//! bounded channel, and the writer awaits them in order. The channel bound is the pipelining
//! depth: a client that sends faster than it reads is slowed by TCP, not buffered without end.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::handlers::{self, InFlight, Reply};
use crate::protocol::{decode_request, ProtocolError};

/// Serves `stream` until the client leaves, sends something unservable, or shutdown begins.
pub async fn serve(stream: TcpStream, broker: Arc<Broker>, shutdown: CancellationToken) {
    let peer = stream.peer_addr().ok();
    let codec = || {
        LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .max_frame_length(broker.config.max_frame_bytes)
            .new_codec()
    };
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(read, codec());
    let mut out = FramedWrite::new(write, codec());
    let (queue, mut replies) =
        mpsc::channel::<InFlight>(broker.config.max_in_flight_per_connection);

    let writer = async move {
        while let Some(in_flight) = replies.recv().await {
            let reply = match in_flight {
                InFlight::Ready(reply) => reply,
                InFlight::Running(task) => task.await.unwrap_or_else(|error| {
                    tracing::error!(%error, "request handler failed");
                    Reply::Close
                }),
            };
            match reply {
                Reply::Frame(frame) => {
                    if let Err(error) = out.send(frame).await {
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
            };
            let frame = match frame {
                None => return,
                Some(Ok(frame)) => frame.freeze(),
                Some(Err(error)) if error.kind() == std::io::ErrorKind::InvalidData => {
                    tracing::warn!(?peer, %error, "bad frame; closing connection");
                    return;
                }
                Some(Err(error)) => {
                    tracing::debug!(?peer, %error, "connection lost");
                    return;
                }
            };
            let in_flight = match decode_request(frame) {
                Ok(request) => handlers::start(broker.clone(), request, peer).await,
                Err(error) => {
                    let reply = reply_to_undecodable(&error);
                    if matches!(reply, Reply::Close) {
                        tracing::warn!(?peer, %error, "closing connection");
                    }
                    InFlight::Ready(reply)
                }
            };
            let close = matches!(in_flight, InFlight::Ready(Reply::Close));
            if queue.send(in_flight).await.is_err() || close {
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
