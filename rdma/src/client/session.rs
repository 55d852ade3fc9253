//! An open session: the control connection and the regions the one-sided operations reach.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;

use crate::control::{self, NamedRegion, RegionRole, Request, Response, SlotGrant};
use crate::control::{Login, QpAddress, PROTOCOL_VERSION};
use crate::shm::ShmEndpoint;
use crate::{OneSided, RdmaError, RemoteRegion};

/// The control connection: a Unix socket (shm) or TCP (verbs).
trait Channel: Read + Write + Send {}
impl<T: Read + Write + Send> Channel for T {}

/// The provider the operations go through.
enum Endpoint {
    Shm(ShmEndpoint),
    #[cfg(feature = "verbs")]
    Verbs(crate::verbs::VerbsEndpoint),
}

/// A session with a broker over one provider: shm ([`Session::connect`]) or, with the
/// `verbs` feature, an RDMA NIC (`Session::connect_verbs`).
pub struct Session {
    stream: Mutex<Box<dyn Channel>>,
    endpoint: Endpoint,
    regions: HashMap<RegionRole, RemoteRegion>,
    ring_capacity: u64,
    id: u64,
}

/// What `Welcome` said.
pub(crate) struct Welcome {
    pub(crate) id: u64,
    pub(crate) regions: Vec<NamedRegion>,
    pub(crate) ring_capacity: u64,
    /// The broker's queue pair (verbs sessions only).
    #[cfg_attr(not(feature = "verbs"), allow(dead_code))]
    pub(crate) qp: Option<QpAddress>,
}

/// Sends `Hello` (with the client's queue pair for verbs) and reads the answer; the frame's
/// descriptors come back too (shm).
pub(crate) fn hello(
    hello: &Request,
    exchange: impl FnOnce(&Request) -> Result<control::Frame<Response>, RdmaError>,
) -> Result<(Welcome, Vec<std::os::fd::OwnedFd>), RdmaError> {
    let frame = exchange(hello)?;
    match frame.message {
        Response::Welcome {
            session,
            regions,
            ring_capacity,
            qp,
        } => Ok((
            Welcome {
                id: session,
                regions,
                ring_capacity,
                qp,
            },
            frame.fds,
        )),
        Response::Error { message } => Err(RdmaError::Refused(message)),
        other => Err(RdmaError::Protocol(format!(
            "expected Welcome, got {other:?}"
        ))),
    }
}

/// The `Hello` request.
pub(crate) fn hello_request(
    client_id: &str,
    token: Option<String>,
    login: Option<Login>,
    qp: Option<QpAddress>,
) -> Request {
    Request::Hello {
        version: PROTOCOL_VERSION,
        client_id: client_id.to_string(),
        token,
        login,
        qp,
    }
}

impl Session {
    /// Connects to the broker's shm control socket at `path` and maps the granted regions.
    pub fn connect(path: impl AsRef<Path>, client_id: &str) -> Result<Session, RdmaError> {
        Self::connect_with_token(path, client_id, None)
    }

    /// [`Session::connect`] with a credential for the broker's authentication hook.
    pub fn connect_with_token(
        path: impl AsRef<Path>,
        client_id: &str,
        token: Option<String>,
    ) -> Result<Session, RdmaError> {
        Self::connect_as(path, client_id, token, None)
    }

    /// As [`Session::connect_with_token`], logged in as a user of the broker's credential store
    /// (`login`): the session then acts as that principal, as far as the broker's ACLs allow.
    pub fn connect_as(
        path: impl AsRef<Path>,
        client_id: &str,
        token: Option<String>,
        login: Option<Login>,
    ) -> Result<Session, RdmaError> {
        let path = path.as_ref();
        let mut stream = UnixStream::connect(path)
            .map_err(RdmaError::io(format!("connect to {}", path.display())))?;
        let (welcome, fds) = hello(&hello_request(client_id, token, login, None), |request| {
            control::write_frame(&mut stream, request, &[], &[])?;
            control::read_frame::<Response>(&mut stream)
        })?;
        if fds.len() != welcome.regions.len() {
            return Err(RdmaError::Protocol(format!(
                "{} regions but {} descriptors",
                welcome.regions.len(),
                fds.len()
            )));
        }
        let endpoint = ShmEndpoint::new();
        for (entry, fd) in welcome.regions.iter().zip(fds) {
            endpoint.attach(entry.region, fd)?;
        }
        Ok(Self::open(
            Box::new(stream),
            Endpoint::Shm(endpoint),
            welcome,
        ))
    }

    fn open(stream: Box<dyn Channel>, endpoint: Endpoint, welcome: Welcome) -> Session {
        Session {
            stream: Mutex::new(stream),
            endpoint,
            regions: welcome
                .regions
                .iter()
                .map(|entry| (entry.role, entry.region))
                .collect(),
            ring_capacity: welcome.ring_capacity,
            id: welcome.id,
        }
    }

    /// The broker's number for this session.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// One request and its response (and the response's binary part).
    pub fn call(&self, request: &Request) -> Result<(Response, Vec<u8>), RdmaError> {
        let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(error) = control::write_frame_plain(&mut *stream, request, &[]) {
            // A broker that ends a session (revoked rights, a fenced member) says why before
            // it closes: that reason, still readable, explains the failed write.
            return match control::read_frame_plain::<Response>(&mut *stream) {
                Ok(control::Frame {
                    message: Response::Error { message },
                    ..
                }) => Err(RdmaError::Refused(message)),
                _ => Err(error),
            };
        }
        let frame = control::read_frame_plain::<Response>(&mut *stream)?;
        match frame.message {
            Response::Error { message } => Err(RdmaError::Refused(message)),
            other => Ok((other, frame.binary)),
        }
    }

    /// The one-sided operations on this session's regions.
    pub fn endpoint(&self) -> &dyn OneSided {
        match &self.endpoint {
            Endpoint::Shm(shm) => shm,
            #[cfg(feature = "verbs")]
            Endpoint::Verbs(verbs) => verbs,
        }
    }

    /// Adds the ATOMIC grant on a joined offset slot (with its memory window on verbs).
    pub(crate) fn grant_slot(&self, slot: &SlotGrant) -> Result<(), RdmaError> {
        match &self.endpoint {
            Endpoint::Shm(shm) => shm.grant(slot.grant),
            #[cfg(feature = "verbs")]
            Endpoint::Verbs(verbs) => {
                let key = slot.key.ok_or_else(|| {
                    RdmaError::Protocol("a verbs slot grant came without its window".into())
                })?;
                verbs.grant_window(slot.grant, key);
            }
        }
        Ok(())
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

#[cfg(feature = "verbs")]
mod verbs_session {
    use std::net::{TcpStream, ToSocketAddrs};

    use super::*;
    use crate::verbs::{Device, VerbsConfig, VerbsEndpoint};

    impl Session {
        /// Connects to a broker's verbs control channel at `addr` (TCP): opens the local
        /// device, creates an RC queue pair, exchanges queue-pair addresses and region keys in
        /// `Hello`/`Welcome`, and brings the queue pair to ready-to-send. Fails with
        /// [`RdmaError::NoDevice`] on a machine without RDMA, before connecting.
        pub fn connect_verbs(
            addr: impl ToSocketAddrs,
            client_id: &str,
            token: Option<String>,
            config: &VerbsConfig,
        ) -> Result<Session, RdmaError> {
            Self::connect_verbs_as(addr, client_id, token, None, config)
        }

        /// As [`Session::connect_verbs`], logged in as a user of the broker's credential
        /// store (see [`Session::connect_as`]).
        pub fn connect_verbs_as(
            addr: impl ToSocketAddrs,
            client_id: &str,
            token: Option<String>,
            login: Option<Login>,
            config: &VerbsConfig,
        ) -> Result<Session, RdmaError> {
            let device = Device::open(config)?;
            let qp = device.queue_pair()?;
            let mut stream = TcpStream::connect(addr).map_err(RdmaError::io("connect"))?;
            stream
                .set_nodelay(true)
                .map_err(RdmaError::io("set TCP_NODELAY"))?;
            let request = hello_request(client_id, token, login, Some(qp.address()));
            let (welcome, _) = hello(&request, |request| {
                control::write_frame_plain(&mut stream, request, &[])?;
                control::read_frame_plain::<Response>(&mut stream)
            })?;
            let remote = welcome.qp.ok_or_else(|| {
                RdmaError::Protocol("the broker's Welcome has no queue pair".into())
            })?;
            let endpoint = VerbsEndpoint::connect(qp, &remote, config.bounce_bytes)?;
            for entry in &welcome.regions {
                // The offset table comes without a key: only the windows of joined slots.
                endpoint.add_region(entry.region, entry.key);
            }
            Ok(Self::open(
                Box::new(stream),
                Endpoint::Verbs(endpoint),
                welcome,
            ))
        }
    }
}
