//! `amanuensis doctor`: everything that decides whether the NPU path runs, as text the app
//! prints as is.

use crate::probe::{self, Availability};
use aie_build::NpuDevice;
use std::fmt::Write as _;
use std::path::Path;

/// The report for the xclbins under `xclbin_root`.
pub fn doctor_report_at(xclbin_root: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "CPU");
    let detected = kernels::Isa::detect();
    let avail: Vec<_> = kernels::Isa::available().iter().map(|i| i.name()).collect();
    let _ = writeln!(
        s,
        "  kernel path: {} (available: {}; VNNI: {}, AVX512_BF16: {})",
        detected.name(),
        avail.join(", "),
        yes(detected.has_vnni()),
        yes(detected.has_bf16())
    );
    let _ = writeln!(s, "  threads: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));

    let info = xrt::build_info();
    let _ = writeln!(s, "XRT");
    match info.xrt_version {
        Some((a, b, c)) => {
            let _ = writeln!(s, "  built against XRT {a}.{b}.{c} ({} path; hw_context: {}, runlist: {})", info.backend, yes(info.has_hw_context), yes(info.has_runlist));
        }
        None => {
            let _ = writeln!(s, "  not found at build time");
        }
    }
    let _ = writeln!(s, "  build note: {}", info.note);
    if info.has_hw_context {
        let env = std::env::var(crate::plan::RUNLIST_ENV).ok();
        let (mode, why) = crate::plan::choose_chain_mode(info.has_runlist, env.as_deref());
        let _ = writeln!(s, "  run chaining: {mode} ({why})");
    }
    let _ = writeln!(s, "NPU devices");
    let mut npu = None;
    match xrt::Device::count() {
        Ok(0) => {
            let _ = writeln!(s, "  none (XRT sees 0 devices)");
        }
        Ok(n) => {
            for i in 0..n {
                match xrt::Device::open(i).and_then(|d| d.name()) {
                    Ok(name) => {
                        let gen = NpuDevice::from_xrt_name(&name);
                        let _ = writeln!(s, "  {i}: {name} ({})", gen.map_or("not a known NPU".to_string(), |g| g.to_string()));
                        if i == 0 {
                            npu = gen;
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(s, "  {i}: cannot open: {e}");
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(s, "  cannot enumerate: {e}");
        }
    }

    let _ = writeln!(s, "xclbins ({})", xclbin_root.display());
    let devices: Vec<NpuDevice> = match npu {
        Some(d) => vec![d],
        None => NpuDevice::ALL.to_vec(),
    };
    for d in devices {
        let status = probe::xclbin_status(xclbin_root, d);
        let ok = status.iter().filter(|(_, r)| r.is_ok()).count();
        let _ = writeln!(s, "  {d}: {ok} of {} kernels built and matching", status.len());
        for (name, r) in status {
            match r {
                Ok(()) => {
                    let _ = writeln!(s, "    ok       {name}");
                }
                Err(e) if e.contains("missing") => {
                    let _ = writeln!(s, "    missing  {name}");
                }
                Err(e) => {
                    let _ = writeln!(s, "    BAD      {name}: {e}");
                }
            }
        }
    }
    let _ = writeln!(s, "Decision");
    match probe::probe(xclbin_root) {
        a @ Availability::Available { .. } => {
            let _ = writeln!(s, "  {a}; --device auto uses the NPU for the encoder GEMMs");
        }
        a @ Availability::Unavailable(_) => {
            let _ = writeln!(s, "  {a}");
            let _ = writeln!(s, "  --device auto uses the CPU");
        }
    }
    s
}

/// The report for the default xclbin root.
pub fn doctor_report() -> String {
    doctor_report_at(&probe::default_xclbin_root())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
