//! `cargo xtask build-kernels [--device npu|npu2] [--kernel NAME] [--dry-run]`: builds the
//! AIE kernels and IRON designs of the catalog into `xclbin/<device>/<kernel>/` with
//! `final.xclbin`, `insts.bin` and `manifest.json`. Without Peano and MLIR-AIE it fails and
//! names every missing piece with how to install it.

use aie_build::build::{build_target, output_dir, run_command};
use aie_build::catalog;
use aie_build::commands::plan;
use aie_build::toolchain::{discover, SystemProbe};
use aie_build::{NpuDevice, Target};

/// Parsed arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub devices: Vec<NpuDevice>,
    pub targets: Vec<Target>,
    pub dry_run: bool,
}

pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut devices = NpuDevice::ALL.to_vec();
    let mut targets = catalog::all();
    let mut dry_run = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--device" => {
                let v = it.next().ok_or("--device needs a value (npu or npu2)")?;
                devices = vec![v.parse()?];
            }
            "--kernel" => {
                let v = it.next().ok_or("--kernel needs a name")?;
                targets = vec![catalog::find(v)?];
            }
            "--dry-run" => dry_run = true,
            other => return Err(format!("build-kernels: unknown argument `{other}`")),
        }
    }
    Ok(Args { devices, targets, dry_run })
}

pub fn run(args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    let tc = discover(&SystemProbe).map_err(|m| m.to_string())?;
    let root = crate::workspace_root();
    println!("Peano: {} ({})", tc.peano_dir.display(), tc.peano_version);
    println!("MLIR-AIE: {} (aiecc {})", tc.mlir_aie_version, tc.aiecc.display());
    for &device in &args.devices {
        for target in &args.targets {
            let out = output_dir(&root, device, target);
            if args.dry_run {
                for cmd in plan(&tc, device, target, &root.join(aie_build::KERNELS_DIR), &out.join("build")) {
                    println!("{cmd}");
                }
                continue;
            }
            println!("building {device}/{}", target.name);
            let mut runner = |c: &aie_build::commands::Cmd| {
                println!("  {c}");
                run_command(c)
            };
            build_target(&tc, device, target, &root, &mut runner)?;
            println!("  -> {}", out.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments_select_devices_and_kernels() {
        let all = parse(&[]).unwrap();
        assert_eq!(all.devices, NpuDevice::ALL);
        assert_eq!(all.targets.len(), catalog::all().len());
        let one = parse(&s(&["--device", "npu2", "--kernel", "softmax_lut_i8_1536x1500", "--dry-run"])).unwrap();
        assert_eq!(one.devices, [NpuDevice::Npu2]);
        assert_eq!(one.targets[0].name, "softmax_lut_i8_1536x1500");
        assert!(one.dry_run);
        assert!(parse(&s(&["--device", "gpu"])).unwrap_err().contains("npu2"));
        assert!(parse(&s(&["--kernel", "x"])).unwrap_err().contains("known:"));
        assert!(parse(&s(&["--device"])).unwrap_err().contains("needs a value"));
    }
}
