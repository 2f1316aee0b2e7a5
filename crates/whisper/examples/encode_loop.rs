//! Runs the encoder on one window N times (for `perf record` / whole-process timing).
//! usage: encode_loop MODEL_DIR [f32|int8|bf16] [N] [BATCH]
use whisper::compute::{Cpu, WeightType};
use whisper::mel::Mel;
use whisper::model::Whisper;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&a[1]);
    let wt: WeightType = a.get(2).map(|s| s.parse().unwrap()).unwrap_or(WeightType::Int8);
    let n: usize = a.get(3).map(|s| s.parse().unwrap()).unwrap_or(10);
    let model = Whisper::load(&dir, Box::new(Cpu::new(wt))).expect("model loads");
    let n_mels = model.dims.n_mels;
    let data: Vec<f32> = (0..n_mels * 3000).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let mel = Mel { n_mels, n_frames: 3000, data };
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(model.encode(&mel).unwrap());
    }
    eprintln!("{:.1} ms per window", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
}
