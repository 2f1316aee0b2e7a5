//! The NPU generations the designs target and what differs between them.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NpuDevice {
    /// XDNA1 (Phoenix, Hawk Point): AIE2 tiles, 4 columns x 4 compute rows used.
    Npu,
    /// XDNA2 (Strix, Strix Halo, Krackan): AIE2P tiles, 8 columns.
    Npu2,
}

impl NpuDevice {
    pub const ALL: [NpuDevice; 2] = [NpuDevice::Npu, NpuDevice::Npu2];

    /// MLIR-AIE's device name (`--dev` of the designs, the xclbin/ subdirectory).
    pub fn name(self) -> &'static str {
        match self {
            NpuDevice::Npu => "npu",
            NpuDevice::Npu2 => "npu2",
        }
    }

    /// Peano's target triple for the compute-tile kernels.
    pub fn target_triple(self) -> &'static str {
        match self {
            NpuDevice::Npu => "aie2-none-unknown-elf",
            NpuDevice::Npu2 => "aie2p-none-unknown-elf",
        }
    }

    /// AIE architecture name (also the suffix of the host scalar test symbols).
    pub fn arch(self) -> &'static str {
        match self {
            NpuDevice::Npu => "aie2",
            NpuDevice::Npu2 => "aie2p",
        }
    }

    /// Compute-tile columns the whole-array designs use.
    pub fn columns(self) -> usize {
        match self {
            NpuDevice::Npu => 4,
            NpuDevice::Npu2 => 8,
        }
    }

    /// Compute rows per column.
    pub fn rows(self) -> usize {
        4
    }

    /// The u8 x i8 `aie::mmul` shape (r, s, t).
    pub fn mmul_i8(self) -> (usize, usize, usize) {
        match self {
            NpuDevice::Npu => (4, 8, 8),
            NpuDevice::Npu2 => (8, 8, 8),
        }
    }

    /// The bf16 `aie::mmul` shape (r, s, t).
    pub fn mmul_bf16(self) -> (usize, usize, usize) {
        match self {
            NpuDevice::Npu => (4, 8, 4),
            NpuDevice::Npu2 => (8, 8, 8),
        }
    }

    /// Recognizes an NPU from XRT's device name (e.g. "RyzenAI-npu1" for Phoenix,
    /// "RyzenAI-npu4"/"npu5"/"npu6" for XDNA2 parts). None: not an NPU we know.
    pub fn from_xrt_name(name: &str) -> Option<NpuDevice> {
        let lower = name.to_ascii_lowercase();
        let idx = lower.find("npu")?;
        let digits: String = lower[idx + 3..].chars().take_while(|c| c.is_ascii_digit()).collect();
        match digits.parse::<u32>().ok()? {
            1 => Some(NpuDevice::Npu),
            4..=6 => Some(NpuDevice::Npu2),
            _ => None,
        }
    }
}

impl fmt::Display for NpuDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NpuDevice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "npu" => Ok(NpuDevice::Npu),
            "npu2" => Ok(NpuDevice::Npu2),
            other => Err(format!("unknown NPU device `{other}`: expected `npu` (XDNA1, AIE2) or `npu2` (XDNA2, AIE2P)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_xrt_names_map() {
        for d in NpuDevice::ALL {
            assert_eq!(d.name().parse::<NpuDevice>().unwrap(), d);
        }
        assert!("npu3".parse::<NpuDevice>().unwrap_err().contains("npu2"));
        assert_eq!(NpuDevice::from_xrt_name("RyzenAI-npu1"), Some(NpuDevice::Npu));
        assert_eq!(NpuDevice::from_xrt_name("RyzenAI-npu4"), Some(NpuDevice::Npu2));
        assert_eq!(NpuDevice::from_xrt_name("RyzenAI-npu5"), Some(NpuDevice::Npu2));
        assert_eq!(NpuDevice::from_xrt_name("xilinx_u250"), None);
    }
}
