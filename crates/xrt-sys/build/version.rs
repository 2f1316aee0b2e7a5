//! Reading XRT's version from its generated `version.h` (`xrt_build_version[] = "2.13.0"`,
//! with `XRT_VERSION_CODE` as a fallback).

use std::fmt;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct XrtVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for XrtVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The first XRT with `xrt::hw_context` and `device.register_xclbin` usable for the NPU.
pub const NPU_MIN: XrtVersion = XrtVersion { major: 2, minor: 17, patch: 0 };

/// Finds and parses the version header below an include root. Installations differ: the AMD
/// packages put it at `<root>/include/version.h`, Debian at `/usr/include/xrt/version.h`,
/// some builds at `xrt/detail/version.h`.
pub fn read(include: &Path) -> Result<XrtVersion, String> {
    for rel in ["version.h", "xrt/detail/version.h", "xrt/version.h"] {
        let p = include.join(rel);
        crate::discover::watch(&p);
        if let Ok(text) = std::fs::read_to_string(&p) {
            return parse(&text).ok_or_else(|| format!("{} has no recognizable XRT version", p.display()));
        }
    }
    Err(format!("no version.h under {}", include.display()))
}

pub fn parse(text: &str) -> Option<XrtVersion> {
    if let Some(rest) = text.split("xrt_build_version[]").nth(1) {
        let quoted = rest.split('"').nth(1)?;
        let mut it = quoted.split('.').map(|p| p.trim().parse::<u32>());
        if let (Some(Ok(major)), Some(Ok(minor))) = (it.next(), it.next()) {
            let patch = it.next().and_then(Result::ok).unwrap_or(0);
            return Some(XrtVersion { major, minor, patch });
        }
    }
    // `#define XRT_VERSION_CODE XRT_VERSION(2, 13)`
    let rest = text.split("XRT_VERSION_CODE XRT_VERSION(").nth(1)?;
    let inner = rest.split(')').next()?;
    let mut it = inner.split(',').map(|p| p.trim().parse::<u32>());
    Some(XrtVersion { major: it.next()?.ok()?, minor: it.next()?.ok()?, patch: 0 })
}
