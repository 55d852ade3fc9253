//! Finding and opening an RDMA device: its context, protection domain and port.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::Arc;

use rdma_sys::{
    ___ibv_query_port, ibv_alloc_pd, ibv_atomic_cap, ibv_close_device, ibv_context, ibv_dealloc_pd,
    ibv_device, ibv_device_attr, ibv_device_cap_flags, ibv_free_device_list, ibv_get_device_list,
    ibv_get_device_name, ibv_gid, ibv_open_device, ibv_pd, ibv_port_attr, ibv_port_state,
    ibv_query_device, ibv_query_gid,
};

use super::attrs::{mtu_bytes, LocalPort};
use super::gid;
use crate::RdmaError;

/// Which device and port a verbs endpoint uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerbsConfig {
    /// Device name (as `ibv_devices` lists it); the first device when `None`.
    pub device: Option<String>,
    /// Port number (from 1).
    pub port: u8,
    /// GID table index (`show_gids` lists them). `None`: chosen from the port's table in
    /// sysfs: on RoCE a RoCE v2 entry, IPv4 first, then global IPv6, then link-local; on
    /// InfiniBand 0.
    pub gid_index: Option<u8>,
    /// Traffic class of the packets sent (the global route header's; on RoCE v2 the IP DSCP
    /// and ECN bits, which lossless RoCE fabrics map to their no-drop priority).
    pub traffic_class: u8,
    /// Service level (InfiniBand SL; on RoCE the VLAN priority), 0 to 15.
    pub service_level: u8,
    /// Bytes of the registered buffer each endpoint copies through (the largest single READ
    /// or WRITE).
    pub bounce_bytes: usize,
}

impl Default for VerbsConfig {
    fn default() -> Self {
        VerbsConfig {
            device: None,
            port: 1,
            gid_index: None,
            traffic_class: 0,
            service_level: 0,
            bounce_bytes: 8 << 20,
        }
    }
}

/// An open device with one protection domain; every registration and queue pair of a
/// process's sessions lives in it.
pub struct Device {
    pub(super) ctx: *mut ibv_context,
    pub(super) pd: *mut ibv_pd,
    name: String,
    pub(super) port: LocalPort,
    pub(super) lid: u16,
    pub(super) gid: [u8; 16],
    atomics_global: bool,
    windows: bool,
}

// SAFETY: a verbs context and protection domain may be used from any thread (libibverbs
// serialises internally what needs it); the raw pointers are only freed in Drop.
unsafe impl Send for Device {}
// SAFETY: as above.
unsafe impl Sync for Device {}

impl Device {
    /// Opens the device and port `config` names; [`RdmaError::NoDevice`] where there is none.
    pub fn open(config: &VerbsConfig) -> Result<Arc<Device>, RdmaError> {
        if config.service_level > 15 {
            return Err(RdmaError::InvalidRequest(format!(
                "service level {} is not 0 to 15",
                config.service_level
            )));
        }
        let (ctx, name) = open_context(config.device.as_deref())?;
        // From here on, Drop closes what was opened (a null pd is skipped).
        let mut device = Device {
            ctx,
            pd: std::ptr::null_mut(),
            name,
            port: LocalPort {
                port: config.port,
                gid_index: 0,
                mtu: 256,
                max_rd_atomic: 1,
                traffic_class: config.traffic_class,
                service_level: config.service_level,
            },
            lid: 0,
            gid: [0; 16],
            atomics_global: false,
            windows: false,
        };
        device.query(config)?;
        // SAFETY: ctx is an open device context.
        device.pd = unsafe { ibv_alloc_pd(ctx) };
        if device.pd.is_null() {
            return Err(os_error("ibv_alloc_pd"));
        }
        Ok(Arc::new(device))
    }

    /// Reads the device's limits and the port's state, LID, MTU and GID.
    fn query(&mut self, config: &VerbsConfig) -> Result<(), RdmaError> {
        let gid_index = match config.gid_index {
            Some(index) => index,
            None => {
                let read = gid::read_table(Path::new(gid::SYSFS), &self.name, config.port);
                let (link_layer, table) = match read {
                    Ok(found) => found,
                    Err(error) => {
                        // A container without /sys/class/infiniband: index 0, as before (right
                        // on InfiniBand; on RoCE, give the index).
                        tracing::warn!(
                            device = %self.name,
                            port = config.port,
                            %error,
                            "cannot read the GID table from sysfs: using GID index 0"
                        );
                        (String::from("unknown"), Vec::new())
                    }
                };
                let index = gid::choose(&link_layer, &table).map_err(|why| {
                    RdmaError::NoDevice(format!("{} port {}: {why}", self.name, config.port))
                })?;
                let chosen = table.iter().find(|e| e.index == index);
                tracing::info!(
                    device = %self.name,
                    port = config.port,
                    gid_index = index,
                    gid = ?chosen.map(|e| e.gid),
                    kind = ?chosen.map(|e| e.kind.as_str()),
                    %link_layer,
                    "GID chosen"
                );
                index
            }
        };
        self.port.gid_index = gid_index;
        // SAFETY: plain C data; the calls below fill them.
        let mut device: ibv_device_attr = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: as above.
        let mut port: ibv_port_attr = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: as above (a union of byte arrays).
        let mut gid: ibv_gid = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: ctx is open; each call writes only the structure it is given.
        unsafe {
            check(ibv_query_device(self.ctx, &mut device), "ibv_query_device")?;
            check(
                ___ibv_query_port(self.ctx, config.port, &mut port),
                "ibv_query_port",
            )?;
            check(
                ibv_query_gid(self.ctx, config.port, i32::from(gid_index), &mut gid),
                "ibv_query_gid",
            )?;
        }
        if port.state != ibv_port_state::IBV_PORT_ACTIVE {
            return Err(RdmaError::NoDevice(format!(
                "port {} of {} is not active (state {})",
                config.port, self.name, port.state
            )));
        }
        let rd_atomic = device.max_qp_rd_atom.min(device.max_qp_init_rd_atom);
        self.port.mtu = mtu_bytes(port.active_mtu);
        self.port.max_rd_atomic = u8::try_from(rd_atomic.clamp(1, 16)).unwrap_or(1);
        self.lid = port.lid;
        // SAFETY: `raw` covers the whole union, written by ibv_query_gid.
        self.gid = unsafe { gid.raw };
        self.atomics_global = device.atomic_cap == ibv_atomic_cap::IBV_ATOMIC_GLOB;
        let type_2b = ibv_device_cap_flags::IBV_DEVICE_MEM_WINDOW_TYPE_2B.0;
        self.windows = device.device_cap_flags & type_2b != 0 && device.max_mw > 0;
        if device.atomic_cap == ibv_atomic_cap::IBV_ATOMIC_NONE {
            return Err(RdmaError::NoDevice(format!(
                "{} supports no atomic operations: commits by fetch-and-add need them",
                self.name
            )));
        }
        Ok(())
    }

    /// Whether type-2 memory windows can be bound (per-slot grants need them).
    pub fn supports_windows(&self) -> bool {
        self.windows
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the NIC's atomics are atomic with the host CPU's too (`IBV_ATOMIC_GLOB`);
    /// otherwise only among themselves (`IBV_ATOMIC_HCA`), and a TCP OffsetCommit racing a
    /// fetch-and-add on the same slot may overwrite it (see docs/rdma.md).
    pub fn atomics_are_global(&self) -> bool {
        self.atomics_global
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: both were created by open() and are released once; everything registered
        // in them holds an Arc of this device, so nothing uses them any more.
        unsafe {
            if !self.pd.is_null() {
                ibv_dealloc_pd(self.pd);
            }
            ibv_close_device(self.ctx);
        }
    }
}

/// Opens the device named `name` (or the first one).
fn open_context(name: Option<&str>) -> Result<(*mut ibv_context, String), RdmaError> {
    let mut count = 0i32;
    // SAFETY: plain libibverbs call; the list it returns is freed below.
    let list = unsafe { ibv_get_device_list(&mut count) };
    if list.is_null() {
        return Err(no_rdma());
    }
    let mut found: Option<(*mut ibv_device, String)> = None;
    let mut names = Vec::new();
    for device in devices(list, count) {
        let device_name = device_name(device);
        if found.is_none() && name.is_none_or(|wanted| wanted == device_name) {
            found = Some((device, device_name.clone()));
        }
        names.push(device_name);
    }
    let opened = found.map(|(device, device_name)| {
        // SAFETY: the device comes from the list, which is still alive.
        (unsafe { ibv_open_device(device) }, device_name)
    });
    // SAFETY: the list came from ibv_get_device_list and is freed once; an opened context
    // stays valid after the list is freed.
    unsafe { ibv_free_device_list(list) };
    match opened {
        None if names.is_empty() => Err(RdmaError::NoDevice("no RDMA device found".into())),
        None => Err(RdmaError::NoDevice(format!(
            "no RDMA device named {} (found: {})",
            name.unwrap_or_default(),
            names.join(", ")
        ))),
        Some((ctx, device_name)) if ctx.is_null() => {
            Err(os_error(&format!("ibv_open_device({device_name})")))
        }
        Some(opened) => Ok(opened),
    }
}

/// The devices of a list from ibv_get_device_list.
fn devices(list: *mut *mut ibv_device, count: i32) -> Vec<*mut ibv_device> {
    (0..usize::try_from(count).unwrap_or(0))
        // SAFETY: the list holds `count` device pointers (a NULL one ends it early).
        .map(|i| unsafe { *list.add(i) })
        .take_while(|device| !device.is_null())
        .collect()
}

fn device_name(device: *mut ibv_device) -> String {
    // SAFETY: a valid device has a NUL-terminated name owned by its list.
    let name = unsafe { ibv_get_device_name(device) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: NUL-terminated, alive while the list is.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// ibv_get_device_list returned NULL: no RDMA in this kernel, or no driver loaded.
fn no_rdma() -> RdmaError {
    let errno = std::io::Error::last_os_error();
    RdmaError::NoDevice(format!(
        "ibv_get_device_list failed ({errno}): this kernel has no RDMA support \
         (CONFIG_INFINIBAND) or no RDMA driver is loaded"
    ))
}

/// The error of a verbs call that returns NULL and sets errno.
pub(super) fn os_error(call: &str) -> RdmaError {
    RdmaError::Io {
        context: call.to_string(),
        source: std::io::Error::last_os_error(),
    }
}

/// The error of a verbs call that returns an errno value (0: success).
pub(super) fn check(rc: i32, call: &str) -> Result<(), RdmaError> {
    if rc == 0 {
        return Ok(());
    }
    // Some calls return -1 and set errno, others return the errno value itself.
    let source = if rc < 0 {
        std::io::Error::last_os_error()
    } else {
        std::io::Error::from_raw_os_error(rc)
    };
    Err(RdmaError::Io {
        context: call.to_string(),
        source,
    })
}

/// Names of the RDMA devices on this machine; [`RdmaError::NoDevice`] if there is none or the
/// kernel has no RDMA support.
pub fn probe() -> Result<Vec<String>, RdmaError> {
    let mut count = 0i32;
    // SAFETY: plain libibverbs call; the list it returns is freed below.
    let list = unsafe { ibv_get_device_list(&mut count) };
    if list.is_null() {
        return Err(no_rdma());
    }
    let names: Vec<String> = devices(list, count).into_iter().map(device_name).collect();
    // SAFETY: the list came from ibv_get_device_list and is freed once.
    unsafe { ibv_free_device_list(list) };
    if names.is_empty() {
        return Err(RdmaError::NoDevice("no RDMA device found".into()));
    }
    Ok(names)
}
