//! Compiles the scalar paths of the AIE kernels (kernels/*/*.cc with -DAIE_HOST_SCALAR) into a
//! static library for this crate's tests only: once with the AIE2 layouts (symbols suffixed
//! `_aie2`) and once with the AIE2P layouts (`_aie2p`). The archive is passed with
//! `rustc-link-arg-tests`, so nothing that depends on aie-build links it.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../../kernels");
    println!("cargo:rerun-if-changed={}", root.display());
    // (sources, DIM_K): the bf16 GEMM uses a 64x32x64 tile (catalog::TILE_BF16).
    let groups: [(&[&str], &str, &str); 2] = [
        (&["gemm_i8/gemm_i8.cc", "softmax_lut_i8/softmax_lut_i8.cc", "gelu_lut_i8/gelu_lut_i8.cc"], "64", "int"),
        (&["gemm_bf16/gemm_bf16.cc"], "32", "bf16"),
    ];
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for ((arch, aie2p), (sources, dim_k, group)) in [("aie2", false), ("aie2p", true)].into_iter().flat_map(|a| groups.iter().map(move |g| (a, *g))) {
        let mut b = cc::Build::new();
        b.cpp(true)
            .std("c++17")
            .include(root.join("include"))
            .define("AIE_HOST_SCALAR", None)
            .define("AM_HOST_SUFFIX", format!("_{arch}").as_str())
            .define("DIM_M", "64")
            .define("DIM_K", dim_k)
            .define("DIM_N", "64")
            // Same float arithmetic as written: no FMA contraction in the bf16 reference path.
            .flag("-ffp-contract=off")
            .flag_if_supported("-fno-exceptions")
            .opt_level(2)
            .warnings(true)
            .cargo_metadata(false);
        if aie2p {
            b.define("AM_AIE2P", None);
        }
        for s in sources {
            b.file(root.join(s));
        }
        let name = format!("am_kernels_host_{arch}_{group}");
        b.compile(&name);
        println!("cargo:rustc-link-arg-tests={}", out.join(format!("lib{name}.a")).display());
    }
}
