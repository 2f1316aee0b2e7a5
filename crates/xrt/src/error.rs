//! The one error type of the crate: every shim status becomes a variant that says what failed
//! and, where it can, what to do about it.

use crate::CommandState;
use xrt_sys as sys;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The shim was compiled without XRT (the message says how to get it).
    #[error("{0}")]
    NotBuilt(String),
    /// No device at that index: `detail` says whether XRT saw fewer devices or could not
    /// enumerate at all (e.g. Debian's XRT 2.13 without `XILINX_XRT`).
    #[error(
        "no XRT device {index}: {detail}. An NPU needs the amdxdna driver (Linux >= 6.14, or \
         amd/xdna-driver) and XRT >= 2.17 with its NPU plugin (see docs/NPU.md)"
    )]
    NoDevice { index: u32, detail: String },
    /// XRT threw; `message` is its explanation.
    #[error("XRT {call} failed: {message}")]
    Xrt { call: &'static str, message: String },
    /// The XRT this crate was built against lacks the feature.
    #[error("{call}: not supported by this build's XRT: {message}")]
    Unsupported { call: &'static str, message: String },
    /// A caller error caught before or by the shim.
    #[error("{call}: invalid argument: {message}")]
    InvalidArgument { call: &'static str, message: String },
    /// A run finished in a state other than completed.
    #[error("kernel run ended in state {0:?} (expected Completed)")]
    RunFailed(CommandState),
    /// A wait exceeded its timeout.
    #[error("kernel run did not complete within {0} ms")]
    Timeout(u32),
}

impl Error {
    /// True when the failure is that XRT is absent from this build (stub shim).
    pub fn is_not_built(&self) -> bool {
        matches!(self, Error::NotBuilt(_))
    }
}

/// Turns a shim status into `Result`, reading the message from `err`.
pub(crate) fn check(call: &'static str, status: sys::xs_status, err: &sys::xs_error) -> Result<()> {
    let message = || err.message_string();
    match status as u32 {
        sys::XS_OK => Ok(()),
        sys::XS_ERR_NOT_BUILT => Err(Error::NotBuilt(message())),
        sys::XS_ERR_UNSUPPORTED => Err(Error::Unsupported { call, message: message() }),
        sys::XS_ERR_INVALID_ARGUMENT => Err(Error::InvalidArgument { call, message: message() }),
        _ => Err(Error::Xrt { call, message: message() }),
    }
}

/// Calls a shim function with a fresh error buffer and converts its status.
macro_rules! call {
    ($name:literal, |$err:ident| $body:expr) => {{
        let mut $err = xrt_sys::xs_error::default();
        // SAFETY: the caller of the macro passes valid handles and out-pointers; the shim
        // catches every C++ exception and reports it through the status and `$err`.
        let status = unsafe { $body };
        $crate::error::check($name, status, &$err)
    }};
}
pub(crate) use call;
