//! Safe RAII types over AMD XRT for the NPU flow: [`Device`], [`Xclbin`], [`HwContext`],
//! [`Kernel`], typed buffers [`Bo<T>`], [`Run`] and [`RunList`]. Every handle frees its XRT
//! object on drop; every failure is an [`Error`] that says what to do.
//!
//! Layers (as cudarc): `xrt-sys` (raw C ABI of the C++ shim) → `error::check` (status codes to
//! `Result`) → the types here. Built without XRT, everything compiles and every call returns
//! [`Error::NotBuilt`]; built against an XRT older than 2.17 (Debian's 2.13), devices,
//! xclbins and buffers work through the legacy API but there is no NPU support.
//!
//! Host sequence for an MLIR-AIE design (see docs/NPU.md): open the device, load the xclbin,
//! register it, create a hardware context, open the `MLIR_AIE` kernel, allocate the
//! instruction buffer (group 1, cacheable) and data buffers (groups 3.., host-only), then
//! per call: `Run` with args `(3, instr, n_words, data...)`, start, wait.

// `%` rather than `is_multiple_of`: a style choice, kept (the toolchain has both).
#![allow(clippy::manual_is_multiple_of)]

mod error;

pub use error::{Error, Result};
use error::call;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::NonNull;
use xrt_sys as sys;

/// What the shim was compiled against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// "npu" (XRT >= 2.17), "legacy" (older XRT) or "stub" (no XRT).
    pub backend: &'static str,
    /// XRT version compiled against, None for the stub.
    pub xrt_version: Option<(u32, u32, u32)>,
    pub has_hw_context: bool,
    pub has_runlist: bool,
    /// The build script's note (XRT path, or why none was found).
    pub note: &'static str,
}

/// Build-time facts of the XRT binding.
pub fn build_info() -> BuildInfo {
    let i = sys::build_info();
    BuildInfo {
        backend: sys::BUILD_BACKEND,
        xrt_version: (i.backend != sys::XS_BACKEND_STUB as i32).then_some((i.xrt_major, i.xrt_minor, i.xrt_patch)),
        has_hw_context: i.has_hw_context != 0,
        has_runlist: i.has_runlist != 0,
        note: sys::BUILD_NOTE,
    }
}

fn cstring(call: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidArgument { call, message: format!("{s:?} contains a NUL byte") })
}

fn from_buf(buf: &[u8]) -> String {
    CStr::from_bytes_until_nul(buf).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default()
}

// ------------------------------------------------------------------------------------ device

/// An XRT device (the NPU is device 0 on a Ryzen AI machine).
pub struct Device {
    raw: NonNull<sys::xs_device>,
}

// SAFETY: xrt::device is a reference-counted handle usable from any thread.
unsafe impl Send for Device {}
unsafe impl Sync for Device {}

impl Device {
    /// Number of devices XRT sees.
    pub fn count() -> Result<u32> {
        let mut n = 0u32;
        call!("device count", |err| sys::xs_device_count(&mut n, &mut err))?;
        Ok(n)
    }

    /// Opens device `index`. With no such device, or when XRT cannot even enumerate devices,
    /// the error is [`Error::NoDevice`] (the stub build gives [`Error::NotBuilt`]).
    pub fn open(index: u32) -> Result<Device> {
        let count = match Device::count() {
            Ok(n) => n,
            Err(Error::Xrt { message, .. }) => {
                return Err(Error::NoDevice { index, detail: format!("XRT could not enumerate devices ({message})") })
            }
            Err(e) => return Err(e),
        };
        if index >= count {
            return Err(Error::NoDevice { index, detail: format!("XRT sees {count} device(s)") });
        }
        let mut raw = std::ptr::null_mut();
        call!("device open", |err| sys::xs_device_open(index, &mut raw, &mut err))?;
        Ok(Device { raw: NonNull::new(raw).expect("xs_device_open returned OK and NULL") })
    }

    /// The device's name as XRT reports it (e.g. "RyzenAI-npu1").
    pub fn name(&self) -> Result<String> {
        let mut buf = [0u8; 256];
        call!("device name", |err| sys::xs_device_name(self.raw.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len(), &mut err))?;
        Ok(from_buf(&buf))
    }

    /// Makes an xclbin known to the device (`register_xclbin` on the NPU path, `load_xclbin`
    /// on legacy XRT).
    pub fn register_xclbin(&self, xclbin: &Xclbin) -> Result<()> {
        call!("register xclbin", |err| sys::xs_device_register_xclbin(self.raw.as_ptr(), xclbin.raw.as_ptr(), &mut err))
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: `raw` came from xs_device_open and is freed once.
        unsafe { sys::xs_device_free(self.raw.as_ptr()) }
    }
}

// ------------------------------------------------------------------------------------ xclbin

/// An xclbin file read into memory.
pub struct Xclbin {
    raw: NonNull<sys::xs_xclbin>,
}

// SAFETY: xrt::xclbin is an immutable, reference-counted handle.
unsafe impl Send for Xclbin {}
unsafe impl Sync for Xclbin {}

impl Xclbin {
    pub fn load(path: &Path) -> Result<Xclbin> {
        let c = cstring("load xclbin", &path.to_string_lossy())?;
        if !path.is_file() {
            return Err(Error::InvalidArgument { call: "load xclbin", message: format!("{} is not a file", path.display()) });
        }
        let mut raw = std::ptr::null_mut();
        call!("load xclbin", |err| sys::xs_xclbin_load(c.as_ptr(), &mut raw, &mut err))?;
        Ok(Xclbin { raw: NonNull::new(raw).expect("xs_xclbin_load returned OK and NULL") })
    }

    /// The xclbin's uuid.
    pub fn uuid(&self) -> Result<[u8; 16]> {
        let mut u = [0u8; 16];
        call!("xclbin uuid", |err| sys::xs_xclbin_uuid(self.raw.as_ptr(), u.as_mut_ptr(), &mut err))?;
        Ok(u)
    }

    /// Names of the kernels in the xclbin.
    pub fn kernel_names(&self) -> Result<Vec<String>> {
        let mut n = 0u32;
        call!("xclbin kernels", |err| sys::xs_xclbin_kernel_count(self.raw.as_ptr(), &mut n, &mut err))?;
        (0..n)
            .map(|i| {
                let mut buf = [0u8; 256];
                call!("xclbin kernel name", |err| sys::xs_xclbin_kernel_name(
                    self.raw.as_ptr(),
                    i,
                    buf.as_mut_ptr() as *mut _,
                    buf.len(),
                    &mut err
                ))?;
                Ok(from_buf(&buf))
            })
            .collect()
    }

    /// The first kernel whose name starts with `prefix` (MLIR-AIE names its kernel `MLIR_AIE`).
    pub fn kernel_with_prefix(&self, prefix: &str) -> Result<String> {
        let names = self.kernel_names()?;
        names.iter().find(|n| n.starts_with(prefix)).cloned().ok_or_else(|| Error::InvalidArgument {
            call: "xclbin kernel lookup",
            message: format!("no kernel named {prefix}* in the xclbin (it has {names:?})"),
        })
    }
}

impl Drop for Xclbin {
    fn drop(&mut self) {
        // SAFETY: `raw` came from xs_xclbin_load and is freed once.
        unsafe { sys::xs_xclbin_free(self.raw.as_ptr()) }
    }
}

// ------------------------------------------------------------------------- hardware context

/// A hardware context: the xclbin's partition of the NPU, in which kernels run.
pub struct HwContext {
    raw: NonNull<sys::xs_hw_context>,
}

// SAFETY: xrt::hw_context is a reference-counted handle usable from any thread.
unsafe impl Send for HwContext {}
unsafe impl Sync for HwContext {}

impl HwContext {
    /// Creates a context for an xclbin already registered with [`Device::register_xclbin`].
    pub fn new(device: &Device, xclbin: &Xclbin) -> Result<HwContext> {
        let mut raw = std::ptr::null_mut();
        call!("create hw_context", |err| sys::xs_hw_context_create(device.raw.as_ptr(), xclbin.raw.as_ptr(), &mut raw, &mut err))?;
        Ok(HwContext { raw: NonNull::new(raw).expect("xs_hw_context_create returned OK and NULL") })
    }
}

impl Drop for HwContext {
    fn drop(&mut self) {
        // SAFETY: `raw` came from xs_hw_context_create and is freed once.
        unsafe { sys::xs_hw_context_free(self.raw.as_ptr()) }
    }
}

// ------------------------------------------------------------------------------------ kernel

/// A kernel of a hardware context.
pub struct Kernel {
    raw: NonNull<sys::xs_kernel>,
}

// SAFETY: xrt::kernel is a reference-counted handle; runs are created per call.
unsafe impl Send for Kernel {}
unsafe impl Sync for Kernel {}

impl Kernel {
    pub fn open(context: &HwContext, name: &str) -> Result<Kernel> {
        let c = cstring("open kernel", name)?;
        let mut raw = std::ptr::null_mut();
        call!("open kernel", |err| sys::xs_kernel_open(context.raw.as_ptr(), c.as_ptr(), &mut raw, &mut err))?;
        Ok(Kernel { raw: NonNull::new(raw).expect("xs_kernel_open returned OK and NULL") })
    }

    /// Memory group of argument `arg`, for [`Bo::alloc`].
    pub fn group_id(&self, arg: i32) -> Result<i32> {
        let mut g = 0;
        call!("kernel group_id", |err| sys::xs_kernel_group_id(self.raw.as_ptr(), arg, &mut g, &mut err))?;
        Ok(g)
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // SAFETY: `raw` came from xs_kernel_open and is freed once.
        unsafe { sys::xs_kernel_free(self.raw.as_ptr()) }
    }
}

// ----------------------------------------------------------------------------------- buffers

/// Element types a buffer may hold: plain data, any bit pattern valid.
///
/// # Safety
/// Implementors must be `Copy` types without padding for which every bit pattern is a valid
/// value (the device writes arbitrary bytes into buffers).
pub unsafe trait Element: Copy + Default + 'static {}
// SAFETY: primitive integers and floats: no padding, every bit pattern valid.
unsafe impl Element for u8 {}
unsafe impl Element for i8 {}
unsafe impl Element for u16 {}
unsafe impl Element for i16 {}
unsafe impl Element for u32 {}
unsafe impl Element for i32 {}
unsafe impl Element for u64 {}
unsafe impl Element for f32 {}

/// Buffer placement flags (XRT's `xrt::bo::flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoFlags {
    Normal,
    /// Used for NPU instruction streams.
    Cacheable,
    DeviceOnly,
    /// Used for NPU data buffers.
    HostOnly,
}

impl BoFlags {
    fn raw(self) -> u32 {
        match self {
            BoFlags::Normal => sys::XS_BO_FLAGS_NORMAL,
            BoFlags::Cacheable => sys::XS_BO_FLAGS_CACHEABLE,
            BoFlags::DeviceOnly => sys::XS_BO_FLAGS_DEV_ONLY,
            BoFlags::HostOnly => sys::XS_BO_FLAGS_HOST_ONLY,
        }
    }
}

/// Direction of a cache/DMA synchronization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncDirection {
    ToDevice,
    FromDevice,
}

/// A typed buffer object of `len` elements of `T`, mapped into host memory.
pub struct Bo<T: Element> {
    raw: NonNull<sys::xs_bo>,
    map: NonNull<T>,
    len: usize,
    _t: PhantomData<T>,
}

// SAFETY: the buffer is owned; host access goes through &self / &mut self.
unsafe impl<T: Element> Send for Bo<T> {}
unsafe impl<T: Element> Sync for Bo<T> {}

impl<T: Element> Bo<T> {
    /// Allocates `len` elements (at least one) in memory group `group`.
    pub fn alloc(device: &Device, len: usize, flags: BoFlags, group: i32) -> Result<Bo<T>> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).filter(|&b| b > 0).ok_or_else(|| Error::InvalidArgument {
            call: "alloc bo",
            message: format!("{len} elements of {} bytes is not a valid buffer size", std::mem::size_of::<T>()),
        })?;
        let mut raw = std::ptr::null_mut();
        call!("alloc bo", |err| sys::xs_bo_alloc(device.raw.as_ptr(), bytes, flags.raw(), group, &mut raw, &mut err))?;
        let raw = NonNull::new(raw).expect("xs_bo_alloc returned OK and NULL");
        let mut ptr = std::ptr::null_mut();
        let mapped = call!("map bo", |err| sys::xs_bo_map(raw.as_ptr(), &mut ptr, &mut err));
        let map = match mapped.and_then(|()| {
            NonNull::new(ptr as *mut T).ok_or(Error::Xrt { call: "map bo", message: "XRT returned a NULL mapping".into() })
        }) {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: freeing the buffer we just allocated, once.
                unsafe { sys::xs_bo_free(raw.as_ptr()) };
                return Err(e);
            }
        };
        if map.as_ptr() as usize % std::mem::align_of::<T>() != 0 {
            // SAFETY: as above.
            unsafe { sys::xs_bo_free(raw.as_ptr()) };
            return Err(Error::Xrt { call: "map bo", message: "mapping is not aligned for the element type".into() });
        }
        Ok(Bo { raw, map, len, _t: PhantomData })
    }

    /// Elements in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The host mapping.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the mapping covers len elements for the buffer's lifetime; T accepts any bits.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.len) }
    }

    /// The host mapping, writable (sync to the device afterwards).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as above; &mut self gives exclusive host access.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr(), self.len) }
    }

    /// Copies `src` into the buffer at element `offset` and syncs that range to the device.
    pub fn write_and_sync(&mut self, src: &[T], offset: usize) -> Result<()> {
        let end = offset.checked_add(src.len()).filter(|&e| e <= self.len).ok_or_else(|| Error::InvalidArgument {
            call: "write bo",
            message: format!("{} elements at {offset} exceed the buffer's {}", src.len(), self.len),
        })?;
        self.as_mut_slice()[offset..end].copy_from_slice(src);
        self.sync_range(SyncDirection::ToDevice, offset, src.len())
    }

    /// Syncs the whole buffer.
    pub fn sync(&self, dir: SyncDirection) -> Result<()> {
        self.sync_range(dir, 0, self.len)
    }

    /// Syncs `len` elements from element `offset`.
    pub fn sync_range(&self, dir: SyncDirection, offset: usize, len: usize) -> Result<()> {
        let sz = std::mem::size_of::<T>();
        let d = match dir {
            SyncDirection::ToDevice => sys::XS_SYNC_TO_DEVICE,
            SyncDirection::FromDevice => sys::XS_SYNC_FROM_DEVICE,
        } as i32;
        call!("sync bo", |err| sys::xs_bo_sync(self.raw.as_ptr(), d, len * sz, offset * sz, &mut err))
    }

    /// The buffer's device address.
    pub fn address(&self) -> Result<u64> {
        let mut a = 0;
        call!("bo address", |err| sys::xs_bo_address(self.raw.as_ptr(), &mut a, &mut err))?;
        Ok(a)
    }
}

impl<T: Element> Drop for Bo<T> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from xs_bo_alloc and is freed once; the mapping dies with it.
        unsafe { sys::xs_bo_free(self.raw.as_ptr()) }
    }
}

// --------------------------------------------------------------------------------------- runs

/// Command states of a run (XRT's `ert_cmd_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandState {
    New,
    Queued,
    Running,
    Completed,
    Error,
    Abort,
    Submitted,
    Timeout,
    NoResponse,
    Other(i32),
}

impl CommandState {
    pub fn from_raw(v: i32) -> CommandState {
        match v as u32 {
            sys::XS_CMD_STATE_NEW => CommandState::New,
            sys::XS_CMD_STATE_QUEUED => CommandState::Queued,
            sys::XS_CMD_STATE_RUNNING => CommandState::Running,
            sys::XS_CMD_STATE_COMPLETED => CommandState::Completed,
            sys::XS_CMD_STATE_ERROR => CommandState::Error,
            sys::XS_CMD_STATE_ABORT => CommandState::Abort,
            sys::XS_CMD_STATE_SUBMITTED => CommandState::Submitted,
            sys::XS_CMD_STATE_TIMEOUT => CommandState::Timeout,
            sys::XS_CMD_STATE_NORESPONSE => CommandState::NoResponse,
            _ => CommandState::Other(v),
        }
    }
}

/// One kernel invocation; reusable (set args once, start/wait many times).
pub struct Run {
    raw: NonNull<sys::xs_run>,
}

// SAFETY: xrt::run is a handle; mutation goes through &mut self.
unsafe impl Send for Run {}

impl Run {
    pub fn new(kernel: &Kernel) -> Result<Run> {
        let mut raw = std::ptr::null_mut();
        call!("create run", |err| sys::xs_run_create(kernel.raw.as_ptr(), &mut raw, &mut err))?;
        Ok(Run { raw: NonNull::new(raw).expect("xs_run_create returned OK and NULL") })
    }

    /// Binds a buffer to argument `index` (XRT keeps its own reference to the buffer).
    pub fn set_arg_bo<T: Element>(&mut self, index: i32, bo: &Bo<T>) -> Result<()> {
        call!("set run arg", |err| sys::xs_run_set_arg_bo(self.raw.as_ptr(), index, bo.raw.as_ptr(), &mut err))
    }

    pub fn set_arg_u32(&mut self, index: i32, value: u32) -> Result<()> {
        call!("set run arg", |err| sys::xs_run_set_arg_u32(self.raw.as_ptr(), index, value, &mut err))
    }

    pub fn set_arg_u64(&mut self, index: i32, value: u64) -> Result<()> {
        call!("set run arg", |err| sys::xs_run_set_arg_u64(self.raw.as_ptr(), index, value, &mut err))
    }

    pub fn start(&mut self) -> Result<()> {
        call!("start run", |err| sys::xs_run_start(self.raw.as_ptr(), &mut err))
    }

    /// Waits up to `timeout_ms` (0: forever) and returns the command state.
    pub fn wait(&mut self, timeout_ms: u32) -> Result<CommandState> {
        let mut s = 0;
        call!("wait run", |err| sys::xs_run_wait(self.raw.as_ptr(), timeout_ms, &mut s, &mut err))?;
        Ok(CommandState::from_raw(s))
    }

    /// Waits and turns anything but `Completed` into an error.
    pub fn wait_completed(&mut self, timeout_ms: u32) -> Result<()> {
        match self.wait(timeout_ms)? {
            CommandState::Completed => Ok(()),
            CommandState::Timeout => Err(Error::Timeout(timeout_ms)),
            s => Err(Error::RunFailed(s)),
        }
    }

    /// `start` then `wait_completed`.
    pub fn execute(&mut self, timeout_ms: u32) -> Result<()> {
        self.start()?;
        self.wait_completed(timeout_ms)
    }

    pub fn state(&self) -> Result<CommandState> {
        let mut s = 0;
        call!("run state", |err| sys::xs_run_state(self.raw.as_ptr(), &mut s, &mut err))?;
        Ok(CommandState::from_raw(s))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // SAFETY: `raw` came from xs_run_create and is freed once.
        unsafe { sys::xs_run_free(self.raw.as_ptr()) }
    }
}

/// Runs submitted together and executed in order (XRT >= 2.18).
pub struct RunList {
    raw: NonNull<sys::xs_runlist>,
}

// SAFETY: as Run.
unsafe impl Send for RunList {}

impl RunList {
    pub fn new(context: &HwContext) -> Result<RunList> {
        let mut raw = std::ptr::null_mut();
        call!("create runlist", |err| sys::xs_runlist_create(context.raw.as_ptr(), &mut raw, &mut err))?;
        Ok(RunList { raw: NonNull::new(raw).expect("xs_runlist_create returned OK and NULL") })
    }

    /// Appends a run (its arguments must be set; do not `start` it yourself).
    pub fn add(&mut self, run: &Run) -> Result<()> {
        call!("runlist add", |err| sys::xs_runlist_add(self.raw.as_ptr(), run.raw.as_ptr(), &mut err))
    }

    pub fn execute(&mut self) -> Result<()> {
        call!("runlist execute", |err| sys::xs_runlist_execute(self.raw.as_ptr(), &mut err))
    }

    /// Waits up to `timeout_ms` (0: forever); a failed run is an error.
    pub fn wait(&mut self, timeout_ms: u32) -> Result<()> {
        let mut done = 0;
        call!("runlist wait", |err| sys::xs_runlist_wait(self.raw.as_ptr(), timeout_ms, &mut done, &mut err))?;
        if done == 1 {
            Ok(())
        } else {
            Err(Error::Timeout(timeout_ms))
        }
    }

    pub fn reset(&mut self) -> Result<()> {
        call!("runlist reset", |err| sys::xs_runlist_reset(self.raw.as_ptr(), &mut err))
    }
}

impl Drop for RunList {
    fn drop(&mut self) {
        // SAFETY: `raw` came from xs_runlist_create and is freed once.
        unsafe { sys::xs_runlist_free(self.raw.as_ptr()) }
    }
}

/// Reads an MLIR-AIE instruction stream (`insts.bin`: little-endian u32 words).
pub fn read_instructions(path: &Path) -> std::io::Result<Vec<u32>> {
    let bytes = std::fs::read(path)?;
    if bytes.len() % 4 != 0 || bytes.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {} bytes is not a non-empty whole number of 32-bit words", path.display(), bytes.len()),
        ));
    }
    Ok(bytes.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect())
}
