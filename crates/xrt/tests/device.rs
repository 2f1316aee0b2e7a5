//! Opening devices and files on machines with and without XRT/NPU. Tests that need a real NPU
//! run only with NPU_TESTS=1.

use std::path::Path;
use xrt::{build_info, read_instructions, BoFlags, Device, Error, SyncDirection, Xclbin};

fn npu_tests() -> bool {
    std::env::var("NPU_TESTS").is_ok_and(|v| v == "1")
}

#[test]
fn opening_device_0_without_an_npu_is_a_precise_error() {
    if npu_tests() {
        eprintln!("NPU_TESTS=1: device 0 is expected to exist; see npu_device_roundtrip");
        return;
    }
    let info = build_info();
    match Device::open(0) {
        Ok(_) => panic!("device 0 opened but NPU_TESTS is not set ({info:?}): set NPU_TESTS=1 on NPU machines"),
        Err(e) => {
            let msg = e.to_string();
            match info.backend {
                "stub" => {
                    assert!(e.is_not_built(), "{e:?}");
                    assert!(msg.contains("XRT not found at build time") && msg.contains("amdxdna"), "{msg}");
                }
                _ => {
                    // Debian's XRT 2.13 here: it enumerates zero devices, or (without a usable
                    // XILINX_XRT) cannot enumerate at all; either way the error says so.
                    assert!(matches!(&e, Error::NoDevice { index: 0, detail }
                        if detail == "XRT sees 0 device(s)" || detail.starts_with("XRT could not enumerate devices")), "{e:?}");
                    assert!(msg.contains("no XRT device 0") && msg.contains("amdxdna") && msg.contains("2.17"), "{msg}");
                }
            }
        }
    }
}

#[test]
fn device_count_is_zero_or_not_built_without_an_npu() {
    if npu_tests() {
        assert!(Device::count().unwrap() >= 1);
        return;
    }
    match Device::count() {
        Ok(n) => assert_eq!(n, 0, "a device is present: run with NPU_TESTS=1"),
        // The stub, or an XRT that cannot find its own plugins (reported, not a crash).
        Err(e) => assert!(e.is_not_built() || matches!(e, Error::Xrt { call: "device count", .. }), "{e:?}"),
    }
}

#[test]
fn loading_a_missing_xclbin_is_an_error() {
    let e = Xclbin::load(Path::new("/nonexistent/final.xclbin")).err().expect("must fail");
    assert!(e.to_string().contains("/nonexistent/final.xclbin"), "{e}");
}

#[test]
fn loading_a_corrupt_xclbin_is_an_error_not_a_crash() {
    let dir = std::env::temp_dir().join(format!("xrt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.xclbin");
    std::fs::write(&p, b"this is not an xclbin").unwrap();
    let e = Xclbin::load(&p).err().expect("a corrupt xclbin must not load");
    match build_info().backend {
        "stub" => assert!(e.is_not_built()),
        _ => assert!(matches!(e, Error::Xrt { .. }), "{e:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn instruction_files_must_be_whole_words() {
    let dir = std::env::temp_dir().join(format!("xrt-insts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("insts.bin");
    std::fs::write(&good, [1u8, 0, 0, 0, 0xff, 0xee, 0xdd, 0xcc]).unwrap();
    assert_eq!(read_instructions(&good).unwrap(), vec![1, 0xccdd_eeff]);
    let bad = dir.join("bad.bin");
    std::fs::write(&bad, [1u8, 2, 3]).unwrap();
    assert!(read_instructions(&bad).unwrap_err().to_string().contains("32-bit words"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn build_info_is_consistent() {
    let info = build_info();
    assert!(["stub", "legacy", "npu"].contains(&info.backend));
    assert_eq!(info.xrt_version.is_none(), info.backend == "stub", "{info:?}");
    if let Some((major, minor, _)) = info.xrt_version {
        assert_eq!(info.backend == "npu", (major, minor) >= (2, 17), "{info:?}");
    }
    assert!(!info.has_runlist || info.has_hw_context);
}

/// Real hardware: device name and a buffer round trip (NPU_TESTS=1 only).
#[test]
fn npu_device_roundtrip() {
    if !npu_tests() {
        eprintln!("skipped: set NPU_TESTS=1 on a machine with an NPU");
        return;
    }
    let dev = Device::open(0).expect("NPU_TESTS=1 but device 0 does not open");
    let name = dev.name().unwrap();
    assert!(!name.is_empty());
    let mut bo = xrt::Bo::<u32>::alloc(&dev, 1024, BoFlags::HostOnly, 0).unwrap();
    let data: Vec<u32> = (0..1024).map(|i| i * 2654435761u32).collect();
    bo.write_and_sync(&data, 0).unwrap();
    bo.sync(SyncDirection::FromDevice).unwrap();
    assert_eq!(bo.as_slice(), &data[..]);
}
