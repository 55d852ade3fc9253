//! Finding RDMA devices.

use std::ffi::CStr;

use rdma_sys::{ibv_free_device_list, ibv_get_device_list, ibv_get_device_name};

use crate::RdmaError;

/// Names of the RDMA devices on this machine; [`RdmaError::NoDevice`] if there is none or the
/// kernel has no RDMA support.
pub fn probe() -> Result<Vec<String>, RdmaError> {
    let mut count = 0i32;
    // SAFETY: plain libibverbs call; the list it returns is freed below.
    let list = unsafe { ibv_get_device_list(&mut count) };
    if list.is_null() {
        let errno = std::io::Error::last_os_error();
        return Err(RdmaError::NoDevice(format!(
            "ibv_get_device_list failed ({errno}): this kernel has no RDMA support \
             (CONFIG_INFINIBAND) or no RDMA driver is loaded"
        )));
    }
    let mut names = Vec::new();
    for i in 0..usize::try_from(count).unwrap_or(0) {
        // SAFETY: the list holds `count` valid device pointers.
        let device = unsafe { *list.add(i) };
        if device.is_null() {
            break;
        }
        // SAFETY: a valid device has a NUL-terminated name owned by the list.
        let name = unsafe { ibv_get_device_name(device) };
        if !name.is_null() {
            // SAFETY: NUL-terminated, alive until the list is freed.
            names.push(
                unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    // SAFETY: the list came from ibv_get_device_list and is freed once.
    unsafe { ibv_free_device_list(list) };
    if names.is_empty() {
        return Err(RdmaError::NoDevice("no RDMA device found".into()));
    }
    Ok(names)
}
