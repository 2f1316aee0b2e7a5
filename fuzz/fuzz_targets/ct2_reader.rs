//! `ct2_reader`: arbitrary bytes as a CTranslate2 `model.bin` (or, when they start with `{`, as
//! its `config.json`), opened and read as a model load reads them: the file's index, every
//! tensor's values and scalars, aliases, and the Whisper dimensions. Errors are fine; panics
//! are not.
#![no_main]

use std::io::Write;

use whisper::config::{Dims, GenerationConfig};
use whisper::ct2::Ct2File;

/// One scratch file per fuzzing process (the reader maps a path).
fn scratch() -> std::path::PathBuf {
    let dir = std::env::var_os("FUZZ_SCRATCH").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() }
    });
    dir.join(format!("amanuensis-fuzz-ct2-{}", std::process::id()))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = scratch();
    {
        let mut f = std::fs::File::create(&path).expect("scratch file");
        f.write_all(data).expect("scratch write");
    }
    if data.first() == Some(&b'{') {
        let _ = GenerationConfig::load(&path);
        return;
    }
    let Ok(file) = Ct2File::open(&path) else { return };
    for t in file.tensors() {
        let _ = t.numel();
        let _ = t.scalar_i64();
        // Values of small tensors only: the fuzzer's inputs are small anyway.
        if t.numel() <= 1 << 16 {
            let _ = t.to_f32();
        }
        let _ = file.require(&t.name);
    }
    let aliases: Vec<(String, String)> = file.aliases().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    for (a, _) in aliases {
        let _ = file.get(&a).map(|t| t.numel());
    }
    let _ = Dims::from_weights(&file);
});
