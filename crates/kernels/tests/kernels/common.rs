//! Test helpers: the paths to exercise, a seeded generator, tolerance checks, a tiny .npy reader.

use kernels::Isa;

/// Every path this host can run; says loudly which ones it cannot.
pub fn paths(what: &str) -> Vec<Isa> {
    for isa in Isa::ALL {
        if !isa.is_available() {
            eprintln!("!!! {what}: this CPU lacks the {} path; it is NOT tested here", isa.name());
        }
    }
    Isa::available()
}

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Roughly normal (sum of uniforms), standard deviation `sd`.
    pub fn normal(&mut self, sd: f32) -> f32 {
        let s: f32 = (0..4).map(|_| self.f32()).sum();
        s * sd * 0.866
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Asserts `|got[i] − want[i]| ≤ tol(i)` for every element; reports the worst one.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ratio = (g - w).abs() / tol(i);
        // NaN ratios (NaN outputs) count as failures too.
        let bad = ratio.is_nan() || ratio > 1.0;
        if bad && worst.is_none_or(|(_, r)| ratio.is_nan() || ratio > r) {
            worst = Some((i, ratio));
        }
    }
    if let Some((i, _)) = worst {
        panic!("{what}: element {i}: got {}, want {} (tolerance {})", got[i], want[i], tol(i));
    }
}

/// Reads a little-endian f32 .npy (v1/v2 header, C order); returns (shape, data).
pub fn read_npy_f32(bytes: &[u8]) -> (Vec<usize>, Vec<f32>) {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not an .npy file");
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[start..start + hlen]).unwrap();
    assert!(header.contains("'<f4'"), "expected float32 little-endian, header {header}");
    assert!(header.contains("'fortran_order': False"), "expected C order");
    let shape_txt = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape_txt.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    let data: Vec<f32> =
        bytes[start + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "npy data length");
    (shape, data)
}
