//! Small commands around the engine: `mel` (log-mel to .npy, for debugging and goldens) and
//! the hidden `wer` (word error rate with our normalizer, used by benches/e2e.sh).

use std::path::PathBuf;

use anyhow::Context;
use whisper::mel::MelExtractor;

#[derive(Debug, clap::Args)]
pub struct MelArgs {
    /// Audio file (any supported format).
    pub audio: PathBuf,
    /// Output .npy file: float32 [n_mels, n_frames], faster-whisper's features of the whole clip.
    #[arg(long)]
    pub out: PathBuf,
    /// Mel bins: 80 (most models) or 128 (large-v3).
    #[arg(long, default_value_t = 80)]
    pub n_mels: usize,
}

pub fn mel(args: MelArgs) -> anyhow::Result<()> {
    let samples = whisper::audio::load_audio(&args.audio)?;
    let mel = MelExtractor::new(args.n_mels)?.compute(&samples);
    whisper::npy::write_f32(&args.out, &[mel.n_mels, mel.n_frames], &mel.data)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("{}: {} mel bins x {} frames -> {}", args.audio.display(), mel.n_mels, mel.n_frames, args.out.display());
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct WerArgs {
    /// Reference text file.
    pub reference: PathBuf,
    /// Hypothesis text file.
    pub hypothesis: PathBuf,
}

pub fn wer(args: WerArgs) -> anyhow::Result<()> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let (r, h) = (read(&args.reference)?, read(&args.hypothesis)?);
    println!("{:.2}%", 100.0 * whisper::eval::wer([(r.as_str(), h.as_str())]));
    Ok(())
}
