//! The NPU backend's host side: bit-identical to kernels::linear_i8 through the host executor
//! (which reads the weights in the packed order the NPU receives), fallbacks, probe reasons,
//! manifests and the doctor report. Hardware checks run only with NPU_TESTS=1.

use aie_build::catalog::{Target, TargetKind};
use aie_build::manifest::{Manifest, Tools, FILE_NAME, INSTS_NAME, XCLBIN_NAME};
use aie_build::NpuDevice;
use npu::exec::{GemmExecutor, HostExecutor, WeightKey};
use npu::{probe, resolve_device, Availability, DeviceChoice, NpuCompute, Reason};
use std::path::{Path, PathBuf};
use whisper::compute::{AttentionShape, Compute, Cpu, LayerRole, Linear, WeightType, Weights};

fn lcg(seed: u64) -> impl FnMut() -> f32 {
    let mut x = seed | 1;
    move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Raw f32 weights `[n][k]` and an optional bias.
fn weights(n: usize, k: usize, bias: bool, seed: u64) -> (Vec<f32>, Option<Vec<f32>>) {
    let mut r = lcg(seed);
    let w = (0..n * k).map(|_| r() * 0.1).collect();
    let b = bias.then(|| (0..n).map(|_| r()).collect());
    (w, b)
}

fn cpu8() -> Cpu {
    Cpu::new(WeightType::Int8)
}

fn prepare(c: &dyn Compute, n: usize, k: usize, bias: bool, seed: u64) -> Linear {
    let (w, b) = weights(n, k, bias, seed);
    c.prepare(&w, n, k, b, LayerRole::Projection)
}

fn input(m: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut r = lcg(seed);
    (0..m * k).map(|_| r() * 3.0).collect()
}

/// kernels::linear_i8 on the same f32 weights (quantized by kernels' own QuantizedI8).
fn cpu_i8(x: &[f32], m: usize, n: usize, k: usize, bias: bool, seed: u64) -> Vec<f32> {
    let (w, b) = weights(n, k, bias, seed);
    let q = kernels::QuantizedI8::new(&w, n, k);
    let mut y = vec![0f32; m * n];
    kernels::linear_i8(x, m, &q, b.as_deref(), &mut y);
    y
}

#[test]
fn npu_linear_is_bit_identical_to_the_cpu_int8_path() {
    for device in NpuDevice::ALL {
        let exec = HostExecutor::new(device, 128, &[(128, 192), (192, 64)]);
        let counters = exec.counters();
        let npu = NpuCompute::with_executor(cpu8(), Box::new(exec));
        for (m, k, n, bias) in [(300, 128, 192, true), (128, 192, 64, false), (65, 128, 192, false)] {
            let seed = (m * k) as u64;
            let lin = prepare(&npu, n, k, bias, seed);
            assert!(matches!(lin.weights, Weights::I8(_)));
            let x = input(m, k, m as u64);
            let mut y = vec![f32::NAN; m * n];
            npu.linear(&x, m, &lin, &mut y);
            let want = cpu_i8(&x, m, n, k, bias, seed);
            assert!(y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{device}: {m}x{k}x{n} differs from kernels::linear_i8");
        }
        let s = npu.stats();
        assert_eq!((s.npu_linear, s.fallback, s.failures), (3, 0, 0));
        // 300 rows in three 128-row runs, then one run each.
        assert_eq!(s.npu_runs, 5);
        assert_eq!(counters.runs.load(std::sync::atomic::Ordering::Relaxed), 5);
        assert_eq!(npu.name(), "npu-int8 (fallback cpu-int8)");
    }
}

#[test]
fn weights_are_uploaded_once_and_reused() {
    let exec = HostExecutor::new(NpuDevice::Npu, 64, &[(64, 64)]);
    let counters = exec.counters();
    let npu = NpuCompute::with_executor(cpu8(), Box::new(exec));
    let (a, b) = (prepare(&npu, 64, 64, true, 1), prepare(&npu, 64, 64, true, 2));
    let x = input(64, 64, 3);
    let mut y = vec![0f32; 64 * 64];
    for _ in 0..3 {
        npu.linear(&x, 64, &a, &mut y);
        npu.linear(&x, 64, &b, &mut y);
    }
    assert_eq!(counters.uploads.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(counters.runs.load(std::sync::atomic::Ordering::Relaxed), 6);
    assert_ne!(npu::weight_key(&a), npu::weight_key(&b));
    // Moving a Linear keeps its identity.
    let key = npu::weight_key(&a);
    let moved = Box::new(a);
    assert_eq!(npu::weight_key(&moved), key);
    // Other layer roles are prepared by the fallback.
    let (w, bias) = weights(64, 64, false, 4);
    let conv = Cpu::new(WeightType::F32);
    let npu_f32 = NpuCompute::with_executor(conv, Box::new(HostExecutor::new(NpuDevice::Npu, 64, &[(64, 64)])));
    assert!(matches!(npu_f32.prepare(&w, 64, 64, bias, LayerRole::Conv).weights, Weights::F32(_)));
}

#[test]
fn small_and_unsupported_products_and_attention_use_the_fallback() {
    let npu = NpuCompute::with_executor(cpu8(), Box::new(HostExecutor::new(NpuDevice::Npu, 64, &[(64, 64)])));
    let cpu = cpu8();
    // Decoder-sized product: the fallback's int8 kernel, same numbers as the NPU would give.
    let lin = prepare(&npu, 64, 64, true, 5);
    let x = input(3, 64, 6);
    let mut y = vec![0f32; 3 * 64];
    npu.linear(&x, 3, &lin, &mut y);
    assert_eq!(y, cpu_i8(&x, 3, 64, 64, true, 5));
    // A shape without an xclbin: prepared and run by the fallback.
    let lin = prepare(&npu, 128, 64, false, 7);
    let x = input(64, 64, 8);
    let (mut y, mut want) = (vec![0f32; 64 * 128], vec![0f32; 64 * 128]);
    npu.linear(&x, 64, &lin, &mut y);
    cpu.linear(&x, 64, &prepare(&cpu, 128, 64, false, 7), &mut want);
    assert_eq!(y, want);
    // Attention.
    let shape = AttentionShape { n_q: 4, n_kv: 6, n_heads: 2, head_dim: 8, causal: false };
    let q = input(4, 16, 9);
    let kv = input(6, 16, 10);
    let (mut o, mut want) = (vec![0f32; 64], vec![0f32; 64]);
    npu.attention(&q, &kv, &kv, shape, &mut o);
    cpu.attention(&q, &kv, &kv, shape, &mut want);
    assert_eq!(o, want);
    assert_eq!(npu.stats().fallback, 3);
    assert_eq!(npu.stats().npu_linear, 0);
}

/// An executor whose runs fail, as a hung or lost device would.
struct Failing;
impl GemmExecutor for Failing {
    fn rows(&self) -> usize {
        64
    }
    fn supports(&self, _: usize, _: usize) -> bool {
        true
    }
    fn has_weights(&self, _: &WeightKey) -> bool {
        true
    }
    fn upload_weights(&mut self, _: WeightKey, _: &[i8], _: usize, _: usize) -> Result<(), String> {
        Ok(())
    }
    fn input(&mut self, _: usize, _: usize) -> Result<&mut [u8], String> {
        Err("device lost".into())
    }
    fn run(&mut self, _: &WeightKey, _: usize, _: usize) -> Result<&[i32], String> {
        Err("device lost".into())
    }
    fn describe(&self) -> String {
        "failing".into()
    }
}

#[test]
fn a_failing_npu_falls_back_and_stays_off() {
    let npu = NpuCompute::with_executor(cpu8(), Box::new(Failing));
    let lin = prepare(&npu, 64, 64, true, 11);
    let x = input(64, 64, 12);
    let mut y = vec![0f32; 64 * 64];
    for _ in 0..2 {
        npu.linear(&x, 64, &lin, &mut y);
    }
    assert_eq!(y, cpu_i8(&x, 64, 64, 64, true, 11));
    let s = npu.stats();
    assert_eq!((s.failures, s.fallback, s.npu_linear), (1, 2, 0), "disabled after the first failure");
    assert!(!npu.npu_active());
}

#[test]
fn probe_without_an_npu_says_why() {
    if std::env::var("NPU_TESTS").is_ok_and(|v| v == "1") {
        return;
    }
    let root = std::env::temp_dir().join(format!("npu-probe-{}", std::process::id()));
    let a = probe(&root);
    let text = a.to_string();
    match (xrt::build_info().backend, &a) {
        ("stub", Availability::Unavailable(Reason::XrtNotFoundAtBuild { .. })) => {
            assert!(text.contains("XRT not found at build time") && text.contains("2.17"), "{text}")
        }
        ("legacy", Availability::Unavailable(Reason::XrtTooOld { version, .. })) => {
            assert!(version.1 < 17);
            assert!(text.contains("too old") && text.contains("2.17"), "{text}");
        }
        ("npu", Availability::Unavailable(Reason::NoDevice { .. })) => assert!(text.contains("no NPU device")),
        (b, a) => panic!("backend {b}: unexpected {a:?}"),
    }
    // The app's --device decision.
    assert_eq!(resolve_device(DeviceChoice::Auto, &a), Ok(false));
    assert_eq!(resolve_device(DeviceChoice::Cpu, &a), Ok(false));
    assert!(resolve_device(DeviceChoice::Npu, &a).unwrap_err().starts_with("--device npu: "));
    assert!("gpu".parse::<DeviceChoice>().is_err());
}

fn fake_build(root: &Path, device: NpuDevice, t: &Target) -> PathBuf {
    let dir = root.join(device.name()).join(&t.name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(XCLBIN_NAME), format!("xclbin of {}", t.name)).unwrap();
    std::fs::write(dir.join(INSTS_NAME), [3u8, 0, 0, 0]).unwrap();
    let tools = Tools { peano: "p".into(), mlir_aie: "m".into(), python: "python3".into(), aiecc_flags: vec![] };
    let mut m = Manifest::new(t, device, tools);
    m.hash_outputs(&dir).unwrap();
    m.write(&dir).unwrap();
    dir
}

#[test]
fn xclbin_checks_name_what_is_missing_or_wrong() {
    let root = std::env::temp_dir().join(format!("npu-xclbins-{}", std::process::id()));
    let targets = npu::required_targets();
    let err = probe::check_xclbins(&root, NpuDevice::Npu, &targets).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Reason::NoXclbin { device: NpuDevice::Npu, ref missing, .. } if missing.len() == 9), "{err:?}");
    assert!(text.contains("cargo xtask build-kernels --device npu") && text.contains("gemm_u8i8_i32_1536x512x2048/final.xclbin"), "{text}");

    for t in &targets {
        fake_build(&root, NpuDevice::Npu, t);
    }
    probe::check_xclbins(&root, NpuDevice::Npu, &targets).unwrap();
    // The other generation has none.
    assert!(matches!(probe::check_xclbins(&root, NpuDevice::Npu2, &targets), Err(Reason::NoXclbin { .. })));
    // A manifest for another shape in the place of this one.
    let wrong = Target::new(TargetKind::GemmU8I8I32 { m: 1536, k: 512, n: 512 });
    let dir = root.join("npu").join(&targets[1].name);
    let mut m = Manifest::read(&root.join("npu").join(&wrong.name)).unwrap();
    m.hash_outputs(&dir).unwrap();
    m.write(&dir).unwrap();
    let err = probe::check_xclbins(&root, NpuDevice::Npu, &targets).unwrap_err();
    assert!(matches!(&err, Reason::ManifestMismatch { target, reason } if target == &targets[1].name && reason.contains("was expected")), "{err:?}");
    // A modified xclbin.
    fake_build(&root, NpuDevice::Npu, &targets[1]);
    std::fs::write(root.join("npu").join(&targets[2].name).join(XCLBIN_NAME), "tampered").unwrap();
    let err = probe::check_xclbins(&root, NpuDevice::Npu, &targets).unwrap_err();
    assert!(err.to_string().contains("final.xclbin has sha256"), "{err}");

    let status = probe::xclbin_status(&root, NpuDevice::Npu);
    assert_eq!(status.iter().filter(|(_, r)| r.is_ok()).count(), 2);
    let report = npu::doctor_report_at(&root);
    for needle in ["CPU", "kernel path", "XRT", "NPU devices", "xclbins", "2 of 11 kernels", "missing  gemm_bf16_f32_1536x512x512", "BAD      gemm_u8i8_i32_1536x2048x512", "Decision", "--device auto uses the CPU"] {
        assert!(report.contains(needle), "doctor report lacks `{needle}`:\n{report}");
    }
    std::fs::remove_file(root.join(FILE_NAME)).ok();
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn fallback_only_backend_reports_why() {
    let npu = NpuCompute::fallback_only(Cpu::new(WeightType::F32), "no NPU device: test".into());
    assert_eq!(npu.why_not(), Some("no NPU device: test"));
    assert_eq!(npu.name(), "cpu-f32");
    // Without the NPU, preparation is the fallback's (f32 stays f32).
    let (w, b) = weights(64, 64, true, 13);
    assert!(matches!(npu.prepare(&w, 64, 64, b, LayerRole::Projection).weights, Weights::F32(_)));
    let opened = NpuCompute::open(cpu8(), &std::env::temp_dir().join("npu-none"));
    if std::env::var("NPU_TESTS").is_err() {
        assert!(!opened.npu_active());
        assert!(opened.why_not().is_some());
    }
}

/// Real hardware: the encoder GEMMs on the NPU equal kernels::linear_i8 bit for bit.
#[test]
fn npu_hardware_linear_matches_cpu_int8() {
    if std::env::var("NPU_TESTS").map_or(true, |v| v != "1") {
        eprintln!("skipped: set NPU_TESTS=1 on a machine with an NPU, XRT >= 2.17 and built xclbins");
        return;
    }
    let root = npu::default_xclbin_root();
    let a = probe(&root);
    assert!(a.is_available(), "{a}");
    let npu = NpuCompute::open(cpu8(), &root);
    assert!(npu.npu_active(), "{:?}", npu.why_not());
    for (k, n) in aie_build::catalog::WHISPER_KN {
        let seed = (k + n) as u64;
        let lin = prepare(&npu, n, k, true, seed);
        let x = input(1500, k, 1);
        let mut y = vec![0f32; 1500 * n];
        npu.linear(&x, 1500, &lin, &mut y);
        let want = cpu_i8(&x, 1500, n, k, true, seed);
        assert!(y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "NPU {k}x{n} differs from kernels::linear_i8");
    }
    assert_eq!(npu.stats().failures, 0);
}
