//! Tests of the real installed models' files: dimensions, config.json and the tokenizer
//! against the model (tiny.en is required; base only with RUN_SLOW_TESTS=1 or when
//! installed). Corrupt and synthetic files are in `model_files.rs`.

use std::path::Path;

use whisper::config::{model_files, Dims, GenerationConfig};
use whisper::ct2::Ct2File;
use whisper::testing::model_dir;
use whisper::tokenizer::{Task, Tokenizer};

fn load_dims(dir: &Path) -> Dims {
    let [_, bin, _] = model_files(dir).unwrap();
    Dims::from_weights(&Ct2File::open(bin).unwrap()).unwrap()
}

#[test]
fn real_tiny_en_dims() {
    let dir = model_dir("tiny.en").unwrap();
    let f = Ct2File::open(dir.join("model.bin")).unwrap();
    assert_eq!((f.version, f.spec_name.as_str()), (6, "WhisperSpec"));
    let dims = Dims::from_weights(&f).unwrap();
    assert_eq!(
        dims,
        Dims {
            n_mels: 80,
            n_audio_ctx: 1500,
            n_audio_state: 384,
            n_audio_head: 6,
            n_audio_layer: 4,
            n_vocab: 51864,
            n_text_ctx: 448,
            n_text_state: 384,
            n_text_head: 6,
            n_text_layer: 4,
        }
    );
    assert!(!dims.is_multilingual());
    // The output projection is tied to the embedding through an alias.
    assert_eq!(
        f.get("decoder/projection/weight").unwrap().name,
        "decoder/embeddings/weight"
    );
    let params: usize = f.tensors().map(|t| t.numel()).sum();
    assert!(
        (37_000_000..40_000_000).contains(&params),
        "tiny.en has ~39M parameters, found {params}"
    );
}

#[test]
fn real_base_dims() {
    let Some(dir) = model_dir("base") else { return };
    let dims = load_dims(&dir);
    assert_eq!(
        dims,
        Dims {
            n_mels: 80,
            n_audio_ctx: 1500,
            n_audio_state: 512,
            n_audio_head: 8,
            n_audio_layer: 6,
            n_vocab: 51865,
            n_text_ctx: 448,
            n_text_state: 512,
            n_text_head: 8,
            n_text_layer: 6,
        }
    );
    assert!(dims.is_multilingual());
}

#[test]
fn real_config_json() {
    let dir = model_dir("tiny.en").unwrap();
    let cfg = GenerationConfig::load(&dir.join("config.json")).unwrap();
    assert!(!cfg.suppress_ids.is_empty());
    assert!(!cfg.alignment_heads.is_empty());
    let dims = load_dims(&dir);
    assert!(cfg
        .alignment_heads
        .iter()
        .all(|&(l, h)| l < dims.n_text_layer && h < dims.n_text_head));
}

fn hello(tok: &Tokenizer) -> Vec<u32> {
    tok.encode(" Hello world.").unwrap()
}

/// Checks shared by both vocabularies, given the model's dims and config.json.
fn check_tokenizer_against_model(dir: &Path) -> Tokenizer {
    let dims = load_dims(dir);
    let tok = Tokenizer::from_file(&dir.join("tokenizer.json"), dims.is_multilingual()).unwrap();
    assert_eq!(
        tok.vocab_size(),
        dims.n_vocab,
        "tokenizer and model disagree on the vocabulary"
    );
    assert_eq!(tok.timestamp_begin, tok.no_timestamps + 1);
    assert_eq!(tok.timestamp_begin as usize + 1501, dims.n_vocab);

    // config.json's suppress_ids are openai-whisper's default suppression: the non-speech tokens
    // plus the prompt-only special tokens.
    let cfg = GenerationConfig::load(&dir.join("config.json")).unwrap();
    let mut expected = tok.non_speech_tokens();
    expected.extend([
        tok.sot,
        tok.translate,
        tok.transcribe,
        tok.sot_lm,
        tok.sot_prev,
        tok.no_speech,
    ]);
    expected.sort_unstable();
    assert_eq!(
        expected, cfg.suppress_ids,
        "non_speech_tokens differ from config.json suppress_ids"
    );
    assert_eq!(
        cfg.suppress_ids_begin,
        vec![tok.encode(" ").unwrap()[0], tok.eot]
    );

    // Round trip, and decoding ignores everything from eot up.
    let ids = hello(&tok);
    assert_eq!(tok.decode(&ids), " Hello world.");
    let mut with_specials = tok.sot_sequence(None, Task::Transcribe).unwrap();
    with_specials.push(tok.no_timestamps);
    with_specials.extend(&ids);
    with_specials.extend([tok.timestamp_begin + 7, tok.eot]);
    assert_eq!(tok.decode(&with_specials), " Hello world.");

    // Timestamps: 54 steps = 1.08 s, 100 steps = 2.00 s.
    let mut timed = vec![tok.sot, tok.timestamp_begin + 54];
    timed.extend(&ids);
    timed.extend([tok.timestamp_begin + 100, tok.timestamp_begin + 100]);
    timed.extend(tok.encode(" Bye.").unwrap());
    timed.extend([tok.timestamp_begin + 1500, tok.eot]);
    assert_eq!(
        tok.decode_with_timestamps(&timed),
        "<|1.08|> Hello world.<|2.00|><|2.00|> Bye.<|30.00|>"
    );
    assert!(tok.is_timestamp(tok.timestamp_begin) && tok.is_timestamp(tok.timestamp_begin + 1500));
    assert!(
        !tok.is_timestamp(tok.timestamp_begin + 1501)
            && !tok.is_timestamp(tok.eot)
            && !tok.is_timestamp(ids[0])
    );
    assert!((tok.timestamp_secs(tok.timestamp_begin + 54).unwrap() - 1.08).abs() < 1e-6);
    assert_eq!(tok.timestamp_secs(tok.no_timestamps), None);

    // A token cut in the middle of a multi-byte character decodes to a replacement, no panic.
    let crab = tok.encode("🦀").unwrap();
    assert!(crab.len() > 1, "🦀 is several byte-level tokens");
    assert!(tok.decode(&crab[..1]).contains('\u{fffd}'));
    assert_eq!(tok.decode(&crab), "🦀");
    // Music notes are suppressed by their first token even when they take several.
    let suppressed = tok.non_speech_tokens();
    for note in ["♩", "♪", "♫", "♬", "♭", "♮", "♯"] {
        assert!(
            suppressed.contains(&tok.encode(note).unwrap()[0]),
            "{note} is not suppressed"
        );
    }
    tok
}

/// eot, sot, translate, transcribe, sot_lm, sot_prev, no_speech, no_timestamps.
fn specials(tok: &Tokenizer) -> [u32; 8] {
    [tok.eot, tok.sot, tok.translate, tok.transcribe, tok.sot_lm, tok.sot_prev, tok.no_speech, tok.no_timestamps]
}

#[test]
fn real_tiny_en_tokenizer() {
    let dir = model_dir("tiny.en").unwrap();
    let tok = check_tokenizer_against_model(&dir);
    assert!(!tok.multilingual);
    assert_eq!(
        specials(&tok),
        [50256, 50257, 50357, 50358, 50359, 50360, 50361, 50362]
    );
    assert_eq!(tok.timestamp_begin, 50363);
    // GPT-2's ids for " Hello", " world", ".".
    assert_eq!(hello(&tok), vec![18435, 995, 13]);
    assert!(tok.languages().is_empty());
    assert_eq!(
        tok.sot_sequence(None, Task::Transcribe).unwrap(),
        vec![50257]
    );
    assert_eq!(
        tok.sot_sequence(Some("en"), Task::Transcribe).unwrap(),
        vec![50257]
    );
    assert_eq!(
        tok.sot_sequence(Some("English"), Task::Transcribe).unwrap(),
        vec![50257]
    );
    let msg = tok
        .sot_sequence(Some("de"), Task::Transcribe)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("English-only"), "{msg}");
    let msg = tok
        .sot_sequence(None, Task::Translate)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cannot translate"), "{msg}");
}

#[test]
fn real_base_tokenizer() {
    let Some(dir) = model_dir("base") else { return };
    let tok = check_tokenizer_against_model(&dir);
    assert!(tok.multilingual);
    assert_eq!(
        specials(&tok),
        [50257, 50258, 50358, 50359, 50360, 50361, 50362, 50363]
    );
    assert_eq!(tok.timestamp_begin, 50364);

    // The languages are exactly config.json's lang_ids, English first.
    let cfg = GenerationConfig::load(&dir.join("config.json")).unwrap();
    let ids: Vec<u32> = tok.languages().iter().map(|&(_, t)| t).collect();
    assert_eq!(ids, cfg.lang_ids);
    assert_eq!(tok.languages().len(), 99);
    assert_eq!(tok.languages()[0], ("en".to_string(), 50259));
    assert_eq!(tok.language_token("en"), Some(50259));
    assert_eq!(tok.language_token("English"), Some(50259));
    assert_eq!(tok.language_token("fr"), Some(50265));
    assert_eq!(tok.language_token("iw"), tok.language_token("he"));
    assert!(tok.language_token("he").is_some());
    assert_eq!(tok.language_token("xx"), None);
    assert_eq!(tok.language_code(50259), Some("en"));
    assert_eq!(tok.language_code(tok.sot), None);

    assert_eq!(
        tok.sot_sequence(Some("en"), Task::Transcribe).unwrap(),
        vec![50258, 50259, 50359]
    );
    assert_eq!(
        tok.sot_sequence(Some("french"), Task::Translate).unwrap(),
        vec![50258, 50265, 50358]
    );
    assert_eq!(
        tok.sot_sequence(None, Task::Transcribe).unwrap(),
        vec![50258, 50359]
    );
    let msg = tok
        .sot_sequence(Some("xx"), Task::Transcribe)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("unknown language `xx`") && msg.contains("en, zh, de"),
        "{msg}"
    );
}
