//! Build script of xrt-sys: finds XRT, reads its version and compiles the C++ shim in one of
//! three modes (NPU path for XRT >= 2.17, legacy path for older XRT, stub without XRT). A
//! missing XRT is never a build error: the stub makes every call fail with a readable message.
//!
//! Environment (each read through `env::var*`, which prints `rerun-if-env-changed`):
//! * `AMANUENSIS_NO_XRT=1`: ignore any installed XRT and build the stub;
//! * `XILINX_XRT=<dir>`: the XRT root to use (`<dir>/include`, `<dir>/lib`); authoritative.

mod discover;
mod env;
mod version;

use discover::Found;

fn main() {
    println!("cargo:rerun-if-changed=shim/xrt_shim.h");
    println!("cargo:rerun-if-changed=shim/xrt_shim.cc");
    println!("cargo:rerun-if-changed=build");

    let mut build = cc::Build::new();
    build.cpp(true).std("c++17").file("shim/xrt_shim.cc").include("shim").warnings(true);

    let backend = match discover::find() {
        Found::Xrt(xrt) => {
            let npu = xrt.version >= version::NPU_MIN;
            build
                .include(&xrt.include)
                .define("XS_WITH_XRT", "1")
                .define("XS_XRT_NPU", if npu { "1" } else { "0" })
                .define("XS_XRT_RUNLIST", if npu && xrt.has_runlist { "1" } else { "0" })
                .define("XS_XRT_MAJOR", xrt.version.major.to_string().as_str())
                .define("XS_XRT_MINOR", xrt.version.minor.to_string().as_str())
                .define("XS_XRT_PATCH", xrt.version.patch.to_string().as_str())
                // XRT's own headers trip a few warnings we cannot fix.
                .flag_if_supported("-Wno-deprecated-declarations")
                .flag_if_supported("-Wno-unused-parameter");
            if let Some(lib) = &xrt.lib {
                println!("cargo:rustc-link-search=native={}", lib.display());
            }
            println!("cargo:rustc-link-lib=dylib=xrt_coreutil");
            // xrt::uuid's inline members call libuuid (uuid_copy, uuid_clear...); linkers that
            // do not resolve through libxrt_coreutil's own dependencies (rust-lld) need it named.
            println!("cargo:rustc-link-lib=dylib=uuid");
            let mode = if npu { "npu" } else { "legacy" };
            println!("cargo:rustc-env=XRT_SYS_BUILD_NOTE=XRT {} at {} ({mode} path)", xrt.version, xrt.include.display());
            if !npu {
                println!(
                    "cargo:warning=xrt-sys: XRT {} found at {}: older than {}, compiling the legacy path (no NPU support)",
                    xrt.version,
                    xrt.include.display(),
                    version::NPU_MIN
                );
            }
            mode
        }
        Found::None(why) => {
            build.define("XS_WITH_XRT", "0");
            println!("cargo:rustc-env=XRT_SYS_BUILD_NOTE=no XRT at build time ({why})");
            "stub"
        }
    };
    build.compile("xrt_shim");
    // cc also links the C++ standard library the shim needs.
    println!("cargo:rustc-env=XRT_SYS_BACKEND={backend}");
}
