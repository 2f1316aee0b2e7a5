//! Tests of model loading: the CTranslate2 reader, the dimensions, config.json and the tokenizer,
//! on the real installed models and on corrupt files built here.
//!
//! Real models are found with `whisper::testing::model_dir` (tiny.en is required; base only with
//! RUN_SLOW_TESTS=1 or when installed). Corrupt files are small synthetic `model.bin` files in the
//! CTranslate2 layout, written by [`Ct2Builder`], plus truncations of the real tiny.en file.

use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use whisper::config::{model_files, Dims, GenerationConfig};
use whisper::ct2::{Ct2File, DType};
use whisper::testing::model_dir;
use whisper::tokenizer::Tokenizer;
use whisper::Error;

// ---------------------------------------------------------------------------------------------
// A writer for synthetic model.bin files
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Var {
    name: String,
    shape: Vec<u32>,
    dtype: u8,
    data: Vec<u8>,
}

fn var(name: &str, shape: &[u32], dtype: u8) -> Var {
    let size = match dtype {
        0 | 3 => 4,
        2 | 4 | 5 => 2,
        _ => 1,
    };
    let n: u32 = shape.iter().product();
    Var {
        name: name.into(),
        shape: shape.to_vec(),
        dtype,
        data: vec![0; n as usize * size],
    }
}

fn scalar_i16(name: &str, v: i16) -> Var {
    Var {
        name: name.into(),
        shape: vec![],
        dtype: 2,
        data: v.to_le_bytes().to_vec(),
    }
}

#[derive(Clone, Debug)]
struct Ct2Builder {
    version: u32,
    spec: String,
    revision: u32,
    vars: Vec<Var>,
    aliases: Vec<(String, String)>,
}

/// The serialised bytes plus named offsets of every structural field, for truncation tests.
struct Built {
    bytes: Vec<u8>,
    marks: Vec<(String, usize)>,
}

impl Ct2Builder {
    /// A tiny but structurally complete Whisper model: width 8, 2 heads, one layer each side,
    /// 80 mel bins, 10-token vocabulary.
    fn whisper() -> Self {
        Ct2Builder {
            version: 6,
            spec: "WhisperSpec".into(),
            revision: 3,
            vars: vec![
                var("encoder/conv1/weight", &[8, 80, 3], 4),
                var("encoder/position_encodings/encodings", &[6, 8], 0),
                scalar_i16("encoder/num_heads", 2),
                var("encoder/layer_0/ffn/linear_0/weight", &[16, 8], 4),
                var("decoder/embeddings/weight", &[10, 8], 4),
                var("decoder/position_encodings/encodings", &[4, 8], 0),
                scalar_i16("decoder/num_heads", 2),
                var("decoder/layer_0/ffn/linear_0/weight", &[16, 8], 1),
            ],
            aliases: vec![(
                "decoder/projection/weight".into(),
                "decoder/embeddings/weight".into(),
            )],
        }
    }

    fn build(&self) -> Built {
        let mut b = Vec::new();
        let mut marks = Vec::new();
        let mark = |marks: &mut Vec<(String, usize)>, b: &Vec<u8>, what: String| {
            marks.push((what, b.len()))
        };
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend(((s.len() + 1) as u16).to_le_bytes());
            b.extend(s.as_bytes());
            b.push(0);
        };
        mark(&mut marks, &b, "version".into());
        b.extend(self.version.to_le_bytes());
        mark(&mut marks, &b, "spec name".into());
        string(&mut b, &self.spec);
        mark(&mut marks, &b, "spec revision".into());
        b.extend(self.revision.to_le_bytes());
        mark(&mut marks, &b, "variable count".into());
        b.extend((self.vars.len() as u32).to_le_bytes());
        for v in &self.vars {
            mark(&mut marks, &b, format!("name of {}", v.name));
            string(&mut b, &v.name);
            mark(&mut marks, &b, format!("rank of {}", v.name));
            b.push(v.shape.len() as u8);
            mark(&mut marks, &b, format!("dims of {}", v.name));
            for d in &v.shape {
                b.extend(d.to_le_bytes());
            }
            mark(&mut marks, &b, format!("dtype of {}", v.name));
            b.push(v.dtype);
            mark(&mut marks, &b, format!("byte count of {}", v.name));
            b.extend((v.data.len() as u32).to_le_bytes());
            mark(&mut marks, &b, format!("data of {}", v.name));
            b.extend(&v.data);
        }
        mark(&mut marks, &b, "alias count".into());
        b.extend((self.aliases.len() as u32).to_le_bytes());
        for (a, t) in &self.aliases {
            mark(&mut marks, &b, format!("alias name {a}"));
            string(&mut b, a);
            mark(&mut marks, &b, format!("alias target {t}"));
            string(&mut b, t);
        }
        Built { bytes: b, marks }
    }

    fn bytes(&self) -> Vec<u8> {
        self.build().bytes
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    path
}

/// Opens `bytes` as a model.bin and expects an error that names the file and contains `needle`.
fn expect_open_error(dir: &Path, bytes: &[u8], needle: &str) -> String {
    let path = write(dir, "model.bin", bytes);
    let msg = match Ct2File::open(&path) {
        Ok(_) => panic!("a corrupt file was accepted (expected an error about {needle:?})"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name the file: {msg}"
    );
    assert!(
        msg.contains(needle),
        "error {msg:?} does not mention {needle:?}"
    );
    msg
}

/// Opens and reads dimensions; expects the dimension check to fail with `needle`.
fn expect_dims_error(dir: &Path, bytes: &[u8], needle: &str) {
    let path = write(dir, "model.bin", bytes);
    let file = Ct2File::open(&path).expect("structurally valid file");
    let msg = Dims::from_weights(&file)
        .expect_err("inconsistent model accepted")
        .to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name the file: {msg}"
    );
    assert!(
        msg.contains(needle),
        "error {msg:?} does not mention {needle:?}"
    );
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Synthetic files: valid, then corrupt in every way we can think of
// ---------------------------------------------------------------------------------------------

#[test]
fn synthetic_model_loads() {
    let dir = tmp();
    let path = write(dir.path(), "model.bin", &Ct2Builder::whisper().bytes());
    let f = Ct2File::open(&path).unwrap();
    assert_eq!(
        (f.version, f.spec_name.as_str(), f.spec_revision),
        (6, "WhisperSpec", 3)
    );
    assert_eq!(f.tensors().count(), 8);
    let dims = Dims::from_weights(&f).unwrap();
    assert_eq!(
        dims,
        Dims {
            n_mels: 80,
            n_audio_ctx: 6,
            n_audio_state: 8,
            n_audio_head: 2,
            n_audio_layer: 1,
            n_vocab: 10,
            n_text_ctx: 4,
            n_text_state: 8,
            n_text_head: 2,
            n_text_layer: 1,
        }
    );
    // The alias resolves to the embedding, with its shape and dtype.
    let proj = f.get("decoder/projection/weight").unwrap();
    assert_eq!(
        (proj.name, proj.shape, proj.dtype),
        ("decoder/embeddings/weight", &[10usize, 8][..], DType::F16)
    );
    assert_eq!(
        f.aliases().collect::<Vec<_>>(),
        vec![("decoder/projection/weight", "decoder/embeddings/weight")]
    );
    assert_eq!(f.get("encoder/num_heads").unwrap().scalar_i64(), Some(2));
    assert!(f.get("nope").is_none());
    let msg = f.require("nope").unwrap_err().to_string();
    assert!(
        msg.contains("nope") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
}

#[test]
fn empty_file() {
    let dir = tmp();
    expect_open_error(dir.path(), &[], "empty file");
}

#[test]
fn missing_file_names_the_path() {
    let dir = tmp();
    let path = dir.path().join("absent.bin");
    let err = Ct2File::open(&path).err().expect("missing file accepted");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.bin"), "{err}");
}

#[test]
fn wrong_version() {
    let dir = tmp();
    for version in [0u32, 1, 2, 3, 7, 0xdead_beef] {
        let mut b = Ct2Builder::whisper();
        b.version = version;
        let msg = expect_open_error(dir.path(), &b.bytes(), "binary version");
        assert!(msg.contains(&version.to_string()), "{msg}");
    }
    // Text files (a common mistake: a Git LFS pointer or an HTML error page) are not models.
    expect_open_error(
        dir.path(),
        b"version https://git-lfs.github.com/spec/v1\n",
        "binary version",
    );
}

#[test]
fn truncated_at_every_structural_point() {
    let dir = tmp();
    let built = Ct2Builder::whisper().build();
    let len = built.bytes.len();
    let mut checked = 0;
    for (what, at) in &built.marks {
        // Cut right before the field and one byte into it.
        for cut in [*at, at + 1] {
            if cut >= len {
                continue;
            }
            let msg = expect_open_error(dir.path(), &built.bytes[..cut], "truncated or corrupt");
            assert!(msg.contains("at byte "), "{what}: {msg}");
            checked += 1;
        }
    }
    // version, spec, revision, count, 6 fields x 8 variables, alias count, name, target.
    assert!(
        checked >= 2 * (4 + 6 * 8 + 3) - 1,
        "only {checked} cut points"
    );
}

#[test]
fn truncated_at_every_byte() {
    let dir = tmp();
    let bytes = Ct2Builder::whisper().bytes();
    for cut in 0..bytes.len() {
        let path = write(dir.path(), "model.bin", &bytes[..cut]);
        let err = Ct2File::open(&path)
            .err()
            .unwrap_or_else(|| panic!("file cut at {cut} of {} accepted", bytes.len()));
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn absurd_rank() {
    let dir = tmp();
    let built = Ct2Builder::whisper().build();
    let at = built
        .marks
        .iter()
        .find(|(w, _)| w == "rank of encoder/conv1/weight")
        .unwrap()
        .1;
    let mut bytes = built.bytes.clone();
    bytes[at] = 200;
    expect_open_error(dir.path(), &bytes, "rank 200");
}

#[test]
fn absurd_variable_count() {
    let dir = tmp();
    let built = Ct2Builder::whisper().build();
    let at = built
        .marks
        .iter()
        .find(|(w, _)| w == "variable count")
        .unwrap()
        .1;
    for count in [u32::MAX, 1 << 20] {
        let mut bytes = built.bytes.clone();
        bytes[at..at + 4].copy_from_slice(&count.to_le_bytes());
        expect_open_error(
            dir.path(),
            &bytes,
            &format!("variable count {count} is impossible"),
        );
    }
    // A plausible but wrong count runs off the end of the file.
    let mut bytes = built.bytes.clone();
    bytes[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
    expect_open_error(dir.path(), &bytes, "truncated or corrupt");
}

#[test]
fn byte_count_disagrees_with_shape() {
    let dir = tmp();
    let mut b = Ct2Builder::whisper();
    b.vars[1].data.pop();
    expect_open_error(
        dir.path(),
        &b.bytes(),
        "encoder/position_encodings/encodings: shape [6, 8] of float32 needs",
    );
    // Dimensions whose product overflows are caught too, not wrapped around.
    let mut b = Ct2Builder::whisper();
    b.vars[1].shape = vec![u32::MAX, u32::MAX, u32::MAX];
    expect_open_error(dir.path(), &b.bytes(), "needs None bytes");
    // An element count that fits but whose byte size overflows: the error message itself once
    // overflowed (found by the ct2_reader fuzz target, fuzz/regressions/ct2_reader/).
    let mut b = Ct2Builder::whisper();
    b.vars[1].shape = vec![1 << 31, 1 << 31, 2];
    expect_open_error(dir.path(), &b.bytes(), "of float32 needs None bytes");
    let dir2 = tmp();
    let crash = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/regressions/ct2_reader/byte_size_overflow_in_message")).unwrap();
    expect_open_error(dir2.path(), &crash, "needs None bytes");
}

#[test]
fn unknown_dtype() {
    let dir = tmp();
    let mut b = Ct2Builder::whisper();
    b.vars[0].dtype = 9;
    expect_open_error(
        dir.path(),
        &b.bytes(),
        "variable encoder/conv1/weight has unknown dtype 9",
    );
}

#[test]
fn alias_to_missing_tensor() {
    let dir = tmp();
    let mut b = Ct2Builder::whisper();
    b.aliases
        .push(("decoder/other".into(), "decoder/does_not_exist".into()));
    expect_open_error(
        dir.path(),
        &b.bytes(),
        "alias decoder/other points to missing variable decoder/does_not_exist",
    );
}

#[test]
fn trailing_garbage() {
    let dir = tmp();
    let mut bytes = Ct2Builder::whisper().bytes();
    bytes.extend(b"garbage");
    expect_open_error(dir.path(), &bytes, "unexpected trailing bytes");
}

#[test]
fn non_utf8_name() {
    let dir = tmp();
    let built = Ct2Builder::whisper().build();
    let at = built
        .marks
        .iter()
        .find(|(w, _)| w == "name of encoder/num_heads")
        .unwrap()
        .1;
    let mut bytes = built.bytes.clone();
    bytes[at + 2] = 0xff; // first byte after the u16 length
    expect_open_error(dir.path(), &bytes, "variable name is not UTF-8");
}

#[test]
fn non_whisper_spec() {
    let dir = tmp();
    let mut b = Ct2Builder::whisper();
    b.spec = "TransformerSpec".into();
    expect_dims_error(
        dir.path(),
        &b.bytes(),
        "`TransformerSpec` model, not a Whisper model",
    );
}

#[test]
fn missing_tensors() {
    let dir = tmp();
    for missing in [
        "encoder/conv1/weight",
        "encoder/position_encodings/encodings",
        "decoder/embeddings/weight",
        "decoder/position_encodings/encodings",
    ] {
        let mut b = Ct2Builder::whisper();
        b.vars.retain(|v| v.name != missing);
        b.aliases.retain(|(_, t)| t != missing);
        expect_dims_error(
            dir.path(),
            &b.bytes(),
            &format!("tensor `{missing}` is missing"),
        );
    }
    let mut b = Ct2Builder::whisper();
    b.vars.retain(|v| !v.name.contains("layer_0"));
    expect_dims_error(dir.path(), &b.bytes(), "no encoder or decoder layers");
}

#[test]
fn inconsistent_dimensions() {
    let dir = tmp();
    let mut b = Ct2Builder::whisper();
    b.vars[2] = scalar_i16("encoder/num_heads", 3);
    expect_dims_error(
        dir.path(),
        &b.bytes(),
        "`encoder/num_heads` = 3 does not divide the model width 8",
    );
    let mut b = Ct2Builder::whisper();
    b.vars[0] = var("encoder/conv1/weight", &[8, 81, 3], 4);
    expect_dims_error(dir.path(), &b.bytes(), "81 mel bins");
    let mut b = Ct2Builder::whisper();
    b.vars[1] = var("encoder/position_encodings/encodings", &[6, 16], 0);
    expect_dims_error(dir.path(), &b.bytes(), "do not match the model width");
    let mut b = Ct2Builder::whisper();
    b.vars[0] = var("encoder/conv1/weight", &[8, 80], 4);
    expect_dims_error(dir.path(), &b.bytes(), "expected rank 3");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Random byte flips and truncations of a valid file never panic: they load or give an error.
    #[test]
    fn random_corruption_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let dir = tmp();
        let mut bytes = Ct2Builder::whisper().bytes();
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let path = write(dir.path(), "model.bin", &bytes);
        match Ct2File::open(&path) {
            Ok(f) => {
                // Whatever loaded must be readable end to end.
                for t in f.tensors() {
                    let _ = t.to_f32();
                    let _ = t.scalar_i64();
                }
                if let Err(e) = Dims::from_weights(&f) {
                    prop_assert!(e.to_string().contains(&path.display().to_string()));
                }
            }
            Err(e) => prop_assert!(e.to_string().contains(&path.display().to_string()), "{}", e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// config.json and tokenizer.json
// ---------------------------------------------------------------------------------------------

#[test]
fn config_json_invalid() {
    let dir = tmp();
    for (text, needle) in [
        ("{ not json", "not a CTranslate2 Whisper config.json"),
        (
            "{\"suppress_ids\": \"all\"}",
            "not a CTranslate2 Whisper config.json",
        ),
        ("[1, 2]", "not a CTranslate2 Whisper config.json"),
    ] {
        let path = write(dir.path(), "config.json", text.as_bytes());
        let msg = GenerationConfig::load(&path).unwrap_err().to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(needle),
            "{msg}"
        );
    }
    let msg = GenerationConfig::load(&dir.path().join("nothing.json"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("nothing.json"), "{msg}");
}

#[test]
fn model_directory_missing_files() {
    let dir = tmp();
    write(dir.path(), "config.json", b"{}");
    write(dir.path(), "model.bin", &Ct2Builder::whisper().bytes());
    let msg = model_files(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("tokenizer.json") && msg.contains("missing"),
        "{msg}"
    );
    write(dir.path(), "tokenizer.json", b"{}");
    assert!(model_files(dir.path()).is_ok());
}

#[test]
fn tokenizer_json_missing_or_garbage() {
    let dir = tmp();
    let missing = dir.path().join("tokenizer.json");
    let err = Tokenizer::from_file(&missing, false).unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    for garbage in [&b"\x00\x01\x02 not json"[..], b"{}", b"{\"model\": 3}", b""] {
        let path = write(dir.path(), "tokenizer.json", garbage);
        let msg = Tokenizer::from_file(&path, true).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("not a Hugging Face tokenizer.json"), "{msg}");
    }

    // A well-formed tokenizer that is not Whisper's: the first missing special token is named.
    let plain = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
        "pre_tokenizer":null,"post_processor":null,"decoder":null,
        "model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,
        "end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"vocab":{"a":0,"b":1},"merges":[]}}"#;
    let path = write(dir.path(), "tokenizer.json", plain.as_bytes());
    let msg = Tokenizer::from_file(&path, false).unwrap_err().to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("<|endoftext|> is missing"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Real models
// ---------------------------------------------------------------------------------------------

#[test]
fn real_model_truncations_fail_cleanly() {
    let src = model_dir("tiny.en").unwrap().join("model.bin");
    let bytes = std::fs::read(&src).unwrap();
    let dir = tmp();
    // Header, inside the first names, inside the first tensor's data, half way, and one byte
    // short (inside the alias section at the very end).
    for cut in [
        1,
        5,
        20,
        60,
        200,
        5_000,
        bytes.len() / 2,
        bytes.len() - 30,
        bytes.len() - 1,
    ] {
        expect_open_error(dir.path(), &bytes[..cut], "truncated or corrupt");
    }
    let mut extended = bytes.clone();
    extended.push(0);
    expect_open_error(dir.path(), &extended, "unexpected trailing bytes");
}
