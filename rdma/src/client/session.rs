//! An open session: the control connection and the mapped regions.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;

use crate::control::{self, RegionRole, Request, Response, PROTOCOL_VERSION};
use crate::shm::ShmEndpoint;
use crate::{RdmaError, RemoteRegion};

/// A session with a broker over the shm provider.
pub struct Session {
    stream: Mutex<UnixStream>,
    endpoint: ShmEndpoint,
    regions: HashMap<RegionRole, RemoteRegion>,
    ring_capacity: u64,
    id: u64,
}

impl Session {
    /// Connects to the broker's control socket at `path` and maps the granted regions.
    pub fn connect(path: impl AsRef<Path>, client_id: &str) -> Result<Session, RdmaError> {
        Self::connect_with_token(path, client_id, None)
    }

    /// [`Session::connect`] with a credential for the broker's authentication hook.
    pub fn connect_with_token(
        path: impl AsRef<Path>,
        client_id: &str,
        token: Option<String>,
    ) -> Result<Session, RdmaError> {
        let path = path.as_ref();
        let mut stream = UnixStream::connect(path)
            .map_err(RdmaError::io(format!("connect to {}", path.display())))?;
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            client_id: client_id.to_string(),
            token,
        };
        control::write_frame(&mut stream, &hello, &[], &[])?;
        let frame = control::read_frame::<Response>(&mut stream)?;
        let (id, named, ring_capacity) = match frame.message {
            Response::Welcome {
                session,
                regions,
                ring_capacity,
            } => (session, regions, ring_capacity),
            Response::Error { message } => return Err(RdmaError::Refused(message)),
            other => {
                return Err(RdmaError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )))
            }
        };
        if frame.fds.len() != named.len() {
            return Err(RdmaError::Protocol(format!(
                "{} regions but {} descriptors",
                named.len(),
                frame.fds.len()
            )));
        }
        let endpoint = ShmEndpoint::new();
        let mut regions = HashMap::new();
        for (entry, fd) in named.into_iter().zip(frame.fds) {
            endpoint.attach(entry.region, fd)?;
            regions.insert(entry.role, entry.region);
        }
        Ok(Session {
            stream: Mutex::new(stream),
            endpoint,
            regions,
            ring_capacity,
            id,
        })
    }

    /// The broker's number for this session.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// One request and its response (and the response's binary part).
    pub fn call(&self, request: &Request) -> Result<(Response, Vec<u8>), RdmaError> {
        let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        control::write_frame(&mut stream, request, &[], &[])?;
        let frame = control::read_frame::<Response>(&mut stream)?;
        match frame.message {
            Response::Error { message } => Err(RdmaError::Refused(message)),
            other => Ok((other, frame.binary)),
        }
    }

    /// The one-sided operations on this session's regions.
    pub fn endpoint(&self) -> &ShmEndpoint {
        &self.endpoint
    }

    /// The region with `role`.
    pub fn region(&self, role: RegionRole) -> Result<RemoteRegion, RdmaError> {
        self.regions
            .get(&role)
            .copied()
            .ok_or_else(|| RdmaError::Protocol(format!("the broker granted no {role:?} region")))
    }

    /// Data bytes of this session's staging ring.
    pub fn ring_capacity(&self) -> u64 {
        self.ring_capacity
    }
}
