//! The committed xrt-sys bindings must match the shim header (`cargo xtask bindgen --check`).

use std::path::Path;
use xtask::bindgen::{check_bindings, libclang_available, HEADER, OUTPUT};

fn libclang_or_say_why() -> bool {
    match libclang_available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("\n!!!!!!!! xtask bindgen --check NOT RUN: {why} !!!!!!!!\n");
            false
        }
    }
}

#[test]
fn committed_bindings_are_current() {
    if !libclang_or_say_why() {
        return;
    }
    check_bindings(&xtask::workspace_root()).unwrap();
}

#[test]
fn check_detects_a_changed_header() {
    if !libclang_or_say_why() {
        return;
    }
    let root = xtask::workspace_root();
    let tmp = std::env::temp_dir().join(format!("xtask-bindgen-{}", std::process::id()));
    let copy = |rel: &str, extra: &str| {
        let dst = tmp.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let mut text = std::fs::read_to_string(root.join(rel)).unwrap();
        text = text.replace("#ifdef __cplusplus\n}", &format!("{extra}#ifdef __cplusplus\n}}"));
        std::fs::write(&dst, text).unwrap();
    };
    copy(OUTPUT, "");
    copy(HEADER, "");
    check_bindings(Path::new(&tmp)).expect("an unchanged copy must pass");
    copy(HEADER, "xs_status xs_new_entry_point(xs_error *err);\n");
    let err = check_bindings(Path::new(&tmp)).expect_err("an added function must make the bindings stale");
    assert!(err.contains("stale") && err.contains("cargo xtask bindgen"), "{err}");
    std::fs::remove_dir_all(&tmp).ok();
}
