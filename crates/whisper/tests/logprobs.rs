//! Per-token log-probabilities of the decoded text (OpenAI's `include[]=logprobs`): one per
//! token, greedy and beam search, adding up to the generation's log-prob less the end of text;
//! forced prefix tokens score 0; a token's raw bytes rebuild the text.

use std::path::{Path, PathBuf};

use whisper::compute::{Cpu, WeightType};
use whisper::decode::{generate, GenerateOptions, Generation};
use whisper::mel::{Mel, N_FRAMES};
use whisper::model::Whisper;
use whisper::tokenizer::Task;
use whisper::transcribe::{build_prompt, TranscribeOptions, Transcriber};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn load() -> Option<Whisper> {
    let dir = whisper::testing::model_dir("tiny.en")?;
    Some(Whisper::load(&dir, Box::new(Cpu::new(WeightType::F32))).expect("model loads"))
}

fn encoded(model: &Whisper, id: &str) -> Vec<f32> {
    let (shape, data) = whisper::npy::read_f32(data().join(format!("features/{id}.npy"))).unwrap();
    let mel = Mel { n_mels: shape[0], n_frames: shape[1], data }.window(0, N_FRAMES).pad_or_trim(N_FRAMES);
    model.encode(&mel).unwrap()
}

fn run(model: &Whisper, audio: &[f32], prompt: &[u32], beam_size: usize) -> Generation {
    let tr = Transcriber::new(model).unwrap();
    let o = TranscribeOptions { beam_size, ..Default::default() };
    let opts = GenerateOptions { temperature: 0.0, ..tr.window_options(&o).generate };
    let mut cache = model.new_kv_cache(beam_size);
    generate(model, &model.cross_kv(audio), &mut cache, prompt, &opts).unwrap()
}

/// One log-prob per token, each a log-probability, and together the generation's sum less the
/// end of text's (a log-probability too, so the tokens' sum is at least the total).
fn consistent(g: &Generation, what: &str) {
    assert_eq!(g.token_logprobs.len(), g.tokens.len(), "{what}");
    assert!(g.token_logprobs.iter().all(|&l| l.is_finite() && l <= 0.0), "{what}: {:?}", g.token_logprobs);
    let sum: f32 = g.token_logprobs.iter().sum();
    let eot = g.sum_logprob - sum;
    assert!(eot <= 1e-3 && eot > -5.0, "{what}: tokens sum to {sum}, generation {}", g.sum_logprob);
}

#[test]
fn greedy_and_beam_token_logprobs_add_up() {
    let Some(model) = load() else { return };
    let sot = model.tokenizer.sot_sequence(Some("en"), Task::Transcribe).unwrap();
    for id in ["librivox_0870", "arctic_a0007", "s03"] {
        let audio = encoded(&model, id);
        for beam in [1, 5] {
            let g = run(&model, &audio, &sot, beam);
            let what = format!("{id}, beam {beam}");
            assert!(g.tokens.len() > 5, "{what}");
            consistent(&g, &what);
            // Clear speech: the words are confident, so most tokens are likely.
            let text: Vec<f32> = g.tokens.iter().zip(&g.token_logprobs).filter(|(&t, _)| t < model.tokenizer.eot).map(|(_, &l)| l).collect();
            let mean = text.iter().sum::<f32>() / text.len() as f32;
            assert!(mean > -0.7, "{what}: mean text token log-prob {mean}");
        }
    }
}

#[test]
fn forced_prefix_tokens_score_zero() {
    let Some(model) = load() else { return };
    let tk = &model.tokenizer;
    let sot = tk.sot_sequence(Some("en"), Task::Transcribe).unwrap();
    let prefix = tk.encode(" Author of").unwrap();
    let prompt = build_prompt(&model, &[], &[], &sot, false, &prefix);
    let audio = encoded(&model, "librivox_0870");
    // With timestamps the forced tokens are `<|0.00|>` and the prefix.
    let forced: Vec<u32> = std::iter::once(tk.timestamp_begin).chain(prefix.iter().copied()).collect();
    for beam in [1, 5] {
        let g = run(&model, &audio, &prompt, beam);
        assert_eq!(&g.tokens[..forced.len()], &forced[..], "beam {beam}");
        assert!(g.token_logprobs[..forced.len()].iter().all(|&l| l == 0.0), "beam {beam}: {:?}", g.token_logprobs);
        consistent(&g, &format!("prefix, beam {beam}"));
        assert!(g.token_logprobs[forced.len()..].iter().any(|&l| l < 0.0));
    }
}

#[test]
fn token_bytes_rebuild_the_text() {
    let Some(model) = load() else { return };
    let tk = &model.tokenizer;
    for text in [" Hello, world.", " café — 日本語 ✓", "\nnew line"] {
        let tokens = tk.encode(text).unwrap();
        let bytes: Vec<u8> = tokens.iter().flat_map(|&t| tk.token_bytes(t)).collect();
        assert_eq!(String::from_utf8(bytes).unwrap(), text);
    }
    assert!(tk.token_bytes(tk.eot).is_empty());
    assert!(tk.token_bytes(tk.timestamp_begin + 3).is_empty());
}
