//! Instruction-set selection: run-time CPU detection, the `KERNELS_FORCE` override, and caching.
//!
//! Every kernel has one code path per [`Isa`]. The default path is detected once and cached;
//! `KERNELS_FORCE=scalar|avx2|avx512` (read once, at first use) pins it, so a whole program or
//! test run can be pushed down a chosen path. Tests also call each path explicitly through the
//! `*_with(isa, ..)` entry points.

use std::sync::OnceLock;

/// An instruction-set family a kernel can be compiled for.
///
/// * `Scalar`: portable Rust, no `target_feature` (the compiler may still use baseline SSE2).
/// * `Avx2`: AVX2 + FMA (Haswell / Zen 1 and later).
/// * `Avx512`: AVX-512 F/BW/DQ/VL. Int8 GEMM additionally uses VNNI and bf16 GEMM uses
///   AVX512_BF16 when the CPU has them (see [`Isa::has_vnni`], [`Isa::has_bf16`]); without them
///   those two kernels fall back to their AVX2 code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
}

impl Isa {
    /// All paths, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// Lower-case name as accepted by `KERNELS_FORCE`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a `KERNELS_FORCE` value.
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    /// Whether this host can run the path.
    pub fn is_available(self) -> bool {
        let f = features();
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => f.avx2,
            Isa::Avx512 => f.avx512,
        }
    }

    /// The paths this host can run.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The best path for this host, or the one forced by `KERNELS_FORCE` (detected once).
    pub fn detect() -> Isa {
        *DEFAULT.get_or_init(|| {
            let best = best_available();
            match std::env::var("KERNELS_FORCE") {
                Ok(v) if !v.trim().is_empty() => match Isa::parse(&v) {
                    Some(isa) if isa.is_available() => isa,
                    Some(isa) => {
                        eprintln!(
                            "kernels: KERNELS_FORCE={v}: this CPU lacks {}; using {} instead",
                            isa.name(),
                            best.name()
                        );
                        best
                    }
                    None => {
                        eprintln!(
                            "kernels: KERNELS_FORCE={v} is not one of scalar|avx2|avx512; using {}",
                            best.name()
                        );
                        best
                    }
                },
                _ => best,
            }
        })
    }

    /// AVX-512 VNNI (`vpdpbusd`) is present (and this is the AVX-512 path).
    pub fn has_vnni(self) -> bool {
        self == Isa::Avx512 && features().vnni
    }

    /// AVX512_BF16 (`vdpbf16ps`) is present (and this is the AVX-512 path).
    pub fn has_bf16(self) -> bool {
        self == Isa::Avx512 && features().bf16
    }

    /// Panics with a readable message when a caller forces a path the CPU lacks; running
    /// `target_feature` code on such a CPU would be undefined behaviour.
    pub(crate) fn assert_available(self) {
        assert!(
            self.is_available(),
            "kernels: the {} path was requested but this CPU does not support it; \
             check Isa::is_available() first",
            self.name()
        );
    }
}

static DEFAULT: OnceLock<Isa> = OnceLock::new();

#[derive(Clone, Copy, Debug, Default)]
struct Features {
    avx2: bool,
    avx512: bool,
    vnni: bool,
    bf16: bool,
}

fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(detect_features)
}

#[cfg(target_arch = "x86_64")]
fn detect_features() -> Features {
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    let avx512 = avx2
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl");
    Features {
        avx2,
        avx512,
        vnni: avx512 && is_x86_feature_detected!("avx512vnni"),
        bf16: avx512 && is_x86_feature_detected!("avx512bf16"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_features() -> Features {
    Features::default()
}

fn best_available() -> Isa {
    let f = features();
    if f.avx512 {
        Isa::Avx512
    } else if f.avx2 {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}
