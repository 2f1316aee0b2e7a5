//! Path selection: `KERNELS_FORCE` parsing and its effect on `Isa::detect` (checked in child
//! processes, since the variable is read once per process).

use kernels::Isa;

#[test]
fn parse_names() {
    for isa in Isa::ALL {
        assert_eq!(Isa::parse(isa.name()), Some(isa));
        assert_eq!(Isa::parse(&isa.name().to_uppercase()), Some(isa));
    }
    assert_eq!(Isa::parse("sse9"), None);
    assert!(Isa::Scalar.is_available());
}

/// Runs inside the child processes spawned below; a no-op in a normal run.
#[test]
fn force_env_child() {
    if let Ok(want) = std::env::var("KERNELS_TEST_EXPECT") {
        assert_eq!(Isa::detect().name(), want, "KERNELS_FORCE was not honoured");
    }
}

#[test]
fn force_env_selects_each_path() {
    let exe = std::env::current_exe().unwrap();
    for isa in crate::common::paths("KERNELS_FORCE") {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "dispatch::force_env_child", "--test-threads=1"])
            .env("KERNELS_FORCE", isa.name())
            .env("KERNELS_TEST_EXPECT", isa.name())
            .output()
            .unwrap();
        assert!(out.status.success(), "child with KERNELS_FORCE={} failed:\n{}", isa.name(), String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "child ran no test");
    }
    // An unknown value falls back to the best path instead of failing.
    let best = Isa::available().last().unwrap().name();
    let out = std::process::Command::new(&exe)
        .args(["--exact", "dispatch::force_env_child"])
        .env("KERNELS_FORCE", "bogus")
        .env("KERNELS_TEST_EXPECT", best)
        .output()
        .unwrap();
    assert!(out.status.success(), "unknown KERNELS_FORCE should fall back to {best}");
}

#[test]
#[should_panic(expected = "does not support")]
#[cfg(not(target_arch = "x86_64"))]
fn forcing_missing_path_panics() {
    kernels::gelu_with(Isa::Avx512, &mut [0.0]);
}
