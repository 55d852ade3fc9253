//! Target in rdma: control frames of the one-sided path.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use rdma::control::{read_frame_async, read_frame_plain, Request, Response};

/// `control_frame`: what the broker reads from a client (blocking and async readers) and what
/// a client reads from the broker.
pub fn control_frame(data: &[u8]) {
    let _ = read_frame_plain::<Request>(&mut &data[..]);
    let _ = read_frame_plain::<Response>(&mut &data[..]);
    // A byte slice is always ready, so one poll finishes the async reader the broker uses.
    let mut reader = data;
    let mut read = std::pin::pin!(read_frame_async::<Request>(&mut reader));
    let polled = read.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(polled, Poll::Ready(_)));
}
