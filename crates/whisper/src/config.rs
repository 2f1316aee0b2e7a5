//! Model hyper-parameters, derived from the tensors of `model.bin` and from `config.json`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ct2::Ct2File;
use crate::{Error, Result};

/// Files a model directory must hold (the faster-whisper layout).
pub const MODEL_FILES: [&str; 3] = ["config.json", "model.bin", "tokenizer.json"];

/// Shapes of the network, read off the weights rather than trusted from names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dims {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_vocab: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
}

/// What `config.json` of a CTranslate2 Whisper model holds.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct GenerationConfig {
    #[serde(default)]
    pub alignment_heads: Vec<(usize, usize)>,
    #[serde(default)]
    pub lang_ids: Vec<u32>,
    #[serde(default)]
    pub suppress_ids: Vec<u32>,
    #[serde(default)]
    pub suppress_ids_begin: Vec<u32>,
}

impl GenerationConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            reason: format!("not a CTranslate2 Whisper config.json: {e}"),
        })
    }
}

fn count_layers(file: &Ct2File, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            file.get(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
                .is_some()
        })
        .count()
}

fn shape_of<'a>(file: &'a Ct2File, name: &str, rank: usize) -> Result<&'a [usize]> {
    let t = file.require(name)?;
    if t.shape.len() != rank {
        return Err(Error::Model {
            path: file.path().to_path_buf(),
            reason: format!(
                "tensor `{name}` has shape {:?}, expected rank {rank}",
                t.shape
            ),
        });
    }
    Ok(t.shape)
}

fn heads(file: &Ct2File, name: &str, d_model: usize) -> Result<usize> {
    let n = file
        .get(name)
        .and_then(|t| t.scalar_i64())
        .unwrap_or((d_model / 64) as i64);
    if n <= 0 || d_model % n as usize != 0 {
        return Err(Error::Model {
            path: file.path().to_path_buf(),
            reason: format!("`{name}` = {n} does not divide the model width {d_model}"),
        });
    }
    Ok(n as usize)
}

impl Dims {
    /// Reads the dimensions from the tensors of a Whisper `model.bin` and checks they agree.
    pub fn from_weights(file: &Ct2File) -> Result<Dims> {
        if file.spec_name != "WhisperSpec" {
            return Err(Error::Model {
                path: file.path().to_path_buf(),
                reason: format!("this is a `{}` model, not a Whisper model", file.spec_name),
            });
        }
        let conv1 = shape_of(file, "encoder/conv1/weight", 3)?;
        let enc_pos = shape_of(file, "encoder/position_encodings/encodings", 2)?;
        let emb = shape_of(file, "decoder/embeddings/weight", 2)?;
        let dec_pos = shape_of(file, "decoder/position_encodings/encodings", 2)?;
        let (n_audio_state, n_mels) = (conv1[0], conv1[1]);
        let dims = Dims {
            n_mels,
            n_audio_ctx: enc_pos[0],
            n_audio_state,
            n_audio_head: heads(file, "encoder/num_heads", n_audio_state)?,
            n_audio_layer: count_layers(file, "encoder"),
            n_vocab: emb[0],
            n_text_ctx: dec_pos[0],
            n_text_state: emb[1],
            n_text_head: heads(file, "decoder/num_heads", emb[1])?,
            n_text_layer: count_layers(file, "decoder"),
        };
        let bad = |reason: String| Error::Model {
            path: file.path().to_path_buf(),
            reason,
        };
        if enc_pos[1] != n_audio_state || dec_pos[1] != dims.n_text_state {
            return Err(bad(format!(
                "positional embeddings {enc_pos:?} / {dec_pos:?} do not match the model width"
            )));
        }
        if n_mels != 80 && n_mels != 128 {
            return Err(bad(format!(
                "conv1 expects {n_mels} mel bins; Whisper uses 80 or 128"
            )));
        }
        if dims.n_audio_layer == 0 || dims.n_text_layer == 0 {
            return Err(bad("no encoder or decoder layers found".into()));
        }
        Ok(dims)
    }

    /// Multilingual models have the full 51865-token (or larger) vocabulary; English-only
    /// models have 51864.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

/// Checks that `dir` holds the files of the faster-whisper layout and returns their paths.
pub fn model_files(dir: &Path) -> Result<[PathBuf; 3]> {
    let files = MODEL_FILES.map(|f| dir.join(f));
    for f in &files {
        if !f.is_file() {
            return Err(Error::Config {
                path: f.clone(),
                reason: format!(
                    "missing; a model directory holds {} (faster-whisper layout); install one with `amanuensis models pull base`",
                    MODEL_FILES.join(", ")
                ),
            });
        }
    }
    Ok(files)
}
