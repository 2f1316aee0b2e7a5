//! The one way the build script reads environment variables: each read also tells Cargo to
//! rerun the script when the variable changes.

use std::ffi::OsString;

/// Reads `name` and prints `cargo:rerun-if-env-changed=name`.
pub fn var_os(name: &str) -> Option<OsString> {
    println!("cargo:rerun-if-env-changed={name}");
    std::env::var_os(name)
}

/// Reads `name` as UTF-8 (non-UTF-8 counts as unset), with the same rerun tracking.
pub fn var(name: &str) -> Option<String> {
    var_os(name).and_then(|v| v.into_string().ok())
}

/// True when `name` is set to something other than "", "0", "false" or "no".
pub fn flag(name: &str) -> bool {
    matches!(var(name), Some(v) if !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"))
}
