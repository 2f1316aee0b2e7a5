//! Whisper's tokenizer: byte-level BPE from `tokenizer.json` plus the special tokens decoding needs.
//!
//! The special token ids differ between English-only and multilingual vocabularies (and between
//! vocabulary revisions), so every id is looked up by its string once, at load time, instead of
//! being hard-coded.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// What the decoder is asked to do after the language token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Transcribe,
    Translate,
}

/// Seconds per timestamp token step: timestamps are quantised to 20 ms.
const SECS_PER_TIMESTAMP: f32 = 0.02;
/// `<|0.00|>` to `<|30.00|>`: one token per 20 ms step of a 30 s window.
const N_TIMESTAMPS: u32 = 1501;

/// Whisper language codes and English names, used to accept `--language english` as well as `en`.
/// The codes actually available come from the vocabulary itself (see [`Tokenizer::languages`]).
const LANGUAGE_NAMES: &[(&str, &str)] = &[
    ("en", "english"),
    ("zh", "chinese"),
    ("de", "german"),
    ("es", "spanish"),
    ("ru", "russian"),
    ("ko", "korean"),
    ("fr", "french"),
    ("ja", "japanese"),
    ("pt", "portuguese"),
    ("tr", "turkish"),
    ("pl", "polish"),
    ("ca", "catalan"),
    ("nl", "dutch"),
    ("ar", "arabic"),
    ("sv", "swedish"),
    ("it", "italian"),
    ("id", "indonesian"),
    ("hi", "hindi"),
    ("fi", "finnish"),
    ("vi", "vietnamese"),
    ("he", "hebrew"),
    ("uk", "ukrainian"),
    ("el", "greek"),
    ("ms", "malay"),
    ("cs", "czech"),
    ("ro", "romanian"),
    ("da", "danish"),
    ("hu", "hungarian"),
    ("ta", "tamil"),
    ("no", "norwegian"),
    ("th", "thai"),
    ("ur", "urdu"),
    ("hr", "croatian"),
    ("bg", "bulgarian"),
    ("lt", "lithuanian"),
    ("la", "latin"),
    ("mi", "maori"),
    ("ml", "malayalam"),
    ("cy", "welsh"),
    ("sk", "slovak"),
    ("te", "telugu"),
    ("fa", "persian"),
    ("lv", "latvian"),
    ("bn", "bengali"),
    ("sr", "serbian"),
    ("az", "azerbaijani"),
    ("sl", "slovenian"),
    ("kn", "kannada"),
    ("et", "estonian"),
    ("mk", "macedonian"),
    ("br", "breton"),
    ("eu", "basque"),
    ("is", "icelandic"),
    ("hy", "armenian"),
    ("ne", "nepali"),
    ("mn", "mongolian"),
    ("bs", "bosnian"),
    ("kk", "kazakh"),
    ("sq", "albanian"),
    ("sw", "swahili"),
    ("gl", "galician"),
    ("mr", "marathi"),
    ("pa", "punjabi"),
    ("si", "sinhala"),
    ("km", "khmer"),
    ("sn", "shona"),
    ("yo", "yoruba"),
    ("so", "somali"),
    ("af", "afrikaans"),
    ("oc", "occitan"),
    ("ka", "georgian"),
    ("be", "belarusian"),
    ("tg", "tajik"),
    ("sd", "sindhi"),
    ("gu", "gujarati"),
    ("am", "amharic"),
    ("yi", "yiddish"),
    ("lo", "lao"),
    ("uz", "uzbek"),
    ("fo", "faroese"),
    ("ht", "haitian creole"),
    ("ps", "pashto"),
    ("tk", "turkmen"),
    ("nn", "nynorsk"),
    ("mt", "maltese"),
    ("sa", "sanskrit"),
    ("lb", "luxembourgish"),
    ("my", "myanmar"),
    ("bo", "tibetan"),
    ("tl", "tagalog"),
    ("mg", "malagasy"),
    ("as", "assamese"),
    ("tt", "tatar"),
    ("haw", "hawaiian"),
    ("ln", "lingala"),
    ("ha", "hausa"),
    ("ba", "bashkir"),
    ("jw", "javanese"),
    ("su", "sundanese"),
    ("yue", "cantonese"),
];

/// Older vocabularies spell Hebrew with its obsolete ISO code; accept either spelling.
const CODE_ALIASES: &[(&str, &str)] = &[("iw", "he"), ("he", "iw")];

/// Punctuation and symbols whose tokens openai-whisper suppresses so the model does not invent
/// speaker tags, sound annotations or music notes (see [`Tokenizer::non_speech_tokens`]).
const NON_SPEECH_SYMBOLS: &[&str] = &[
    "\"",
    "#",
    "(",
    ")",
    "*",
    "+",
    "/",
    ":",
    ";",
    "<",
    "=",
    ">",
    "@",
    "[",
    "\\",
    "]",
    "^",
    "_",
    "`",
    "{",
    "|",
    "}",
    "~",
    "「",
    "」",
    "『",
    "』",
    "<<",
    ">>",
    "<<<",
    ">>>",
    "--",
    "---",
    "-(",
    "-[",
    "('",
    "(\"",
    "((",
    "))",
    "(((",
    ")))",
    "[[",
    "]]",
    "{{",
    "}}",
    "♪♪",
    "♪♪♪",
];
/// Music symbols (U+2640..U+267F) that may take several byte-level tokens; their first token is
/// suppressed even then, which is safe because all of them share their leading UTF-8 bytes.
const MUSIC_SYMBOLS: &[&str] = &["♩", "♪", "♫", "♬", "♭", "♮", "♯"];

/// A loaded Whisper tokenizer with its special token ids resolved.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub sot_lm: u32,
    pub no_timestamps: u32,
    pub no_speech: u32,
    pub transcribe: u32,
    pub translate: u32,
    pub timestamp_begin: u32,
    pub multilingual: bool,
    languages: Vec<(String, u32)>,
    vocab_size: usize,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("eot", &self.eot)
            .field("sot", &self.sot)
            .field("timestamp_begin", &self.timestamp_begin)
            .field("multilingual", &self.multilingual)
            .field("languages", &self.languages.len())
            .field("vocab_size", &self.vocab_size)
            .finish_non_exhaustive()
    }
}

/// The English name of a Whisper language code (`en` → `english`), as openai-whisper names it.
pub fn language_name(code: &str) -> Option<&'static str> {
    let name = |c: &str| LANGUAGE_NAMES.iter().find(|(k, _)| *k == c).map(|&(_, n)| n);
    name(code).or_else(|| CODE_ALIASES.iter().find(|(a, _)| *a == code).and_then(|(_, b)| name(b)))
}

/// The byte a character of the byte-level vocabulary stands for (the inverse of GPT-2's
/// `bytes_to_unicode`: printable Latin-1 bytes are themselves, the others are 256 + their rank).
fn byte_of_char(c: char) -> Option<u8> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let c = c as u32;
    if c < 256 {
        return printable(c).then_some(c as u8);
    }
    (0u32..256).filter(|&b| !printable(b)).nth((c - 256) as usize).map(|b| b as u8)
}

/// `<|xx|>` → `xx` when the inside looks like a Whisper language code (2–3 lowercase letters).
fn language_code_of(token: &str) -> Option<&str> {
    let code = token.strip_prefix("<|")?.strip_suffix("|>")?;
    ((2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase())).then_some(code)
}

impl Tokenizer {
    /// Loads `tokenizer.json` and resolves the special tokens. `multilingual` comes from the model
    /// (see [`crate::config::Dims::is_multilingual`]); it decides whether language and task tokens
    /// are part of the prompt.
    pub fn from_file(path: &Path, multilingual: bool) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            bad(format!(
                "not a Hugging Face tokenizer.json ({e}); copy the tokenizer.json that belongs to this model, \
                 or reinstall it with `amanuensis models pull`"
            ))
        })?;
        let lookup = |names: &[&str]| -> Result<u32> {
            names
                .iter()
                .find_map(|n| inner.token_to_id(n))
                .ok_or_else(|| {
                    bad(format!(
                        "special token {} is missing; this is not a Whisper tokenizer.json",
                        names.join(" / ")
                    ))
                })
        };
        let eot = lookup(&["<|endoftext|>"])?;
        let sot = lookup(&["<|startoftranscript|>"])?;
        let sot_prev = lookup(&["<|startofprev|>"])?;
        let sot_lm = lookup(&["<|startoflm|>"])?;
        let no_timestamps = lookup(&["<|notimestamps|>"])?;
        // The no-speech token was renamed; older vocabularies (such as the English-only ones)
        // call it <|nocaptions|>.
        let no_speech = lookup(&["<|nospeech|>", "<|nocaptions|>"])?;
        let transcribe = lookup(&["<|transcribe|>"])?;
        let translate = lookup(&["<|translate|>"])?;
        // Older tokenizer.json files do not list the timestamp tokens at all (the model still
        // predicts them); in every Whisper vocabulary they start right after <|notimestamps|>.
        let timestamp_begin = inner.token_to_id("<|0.00|>").unwrap_or(no_timestamps + 1);

        // Decoding treats every id >= eot as special, so the vocabulary must be laid out that way.
        let specials = [
            sot,
            sot_prev,
            sot_lm,
            no_timestamps,
            no_speech,
            transcribe,
            translate,
            timestamp_begin,
        ];
        if specials.iter().any(|&s| s <= eot) || timestamp_begin <= no_timestamps {
            return Err(bad(format!(
                "special tokens are not laid out like Whisper's (<|endoftext|> = {eot}, <|startoftranscript|> = {sot}, \
                 <|0.00|> = {timestamp_begin}); this is not a Whisper tokenizer.json"
            )));
        }

        // Language tokens sit between <|startoftranscript|> and the task tokens.
        let mut languages = Vec::new();
        if multilingual {
            for id in sot + 1..translate.min(transcribe) {
                if let Some(code) = inner.id_to_token(id).as_deref().and_then(language_code_of) {
                    languages.push((code.to_string(), id));
                }
            }
            if languages.is_empty() {
                return Err(bad(
                    "the model is multilingual but this tokenizer has no language tokens; \
                     use the tokenizer.json that belongs to the model"
                        .into(),
                ));
            }
        }
        let vocab_size = inner
            .get_vocab_size(true)
            .max((timestamp_begin + N_TIMESTAMPS) as usize);
        Ok(Tokenizer {
            inner,
            path: path.to_path_buf(),
            eot,
            sot,
            sot_prev,
            sot_lm,
            no_timestamps,
            no_speech,
            transcribe,
            translate,
            timestamp_begin,
            multilingual,
            languages,
            vocab_size,
        })
    }

    /// The file this tokenizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `(code, token)` for every language of a multilingual model, in vocabulary order; empty for
    /// English-only models.
    pub fn languages(&self) -> &[(String, u32)] {
        &self.languages
    }

    /// The token of a language given by code (`en`) or English name (`english`), case-insensitive.
    pub fn language_token(&self, code: &str) -> Option<u32> {
        let wanted = code.trim().to_ascii_lowercase();
        let code = LANGUAGE_NAMES
            .iter()
            .find(|(_, name)| *name == wanted)
            .map_or(wanted.as_str(), |(c, _)| c);
        let find = |c: &str| self.languages.iter().find(|(l, _)| l == c).map(|&(_, t)| t);
        find(code).or_else(|| {
            CODE_ALIASES
                .iter()
                .find(|(a, _)| *a == code)
                .and_then(|(_, b)| find(b))
        })
    }

    /// The language code of a language token.
    pub fn language_code(&self, token: u32) -> Option<&str> {
        self.languages
            .iter()
            .find(|&&(_, t)| t == token)
            .map(|(c, _)| c.as_str())
    }

    /// The prompt that starts decoding: `[sot, language, task]` for multilingual models (the
    /// language is left out when `None`, as openai-whisper does), just `[sot]` for English-only
    /// models, which know neither language nor task tokens in their prompt.
    pub fn sot_sequence(&self, language: Option<&str>, task: Task) -> Result<Vec<u32>> {
        if !self.multilingual {
            if let Some(l) = language {
                let l = l.trim().to_ascii_lowercase();
                if l != "en" && l != "english" {
                    return Err(Error::InvalidArgument(format!(
                        "this model is English-only and cannot transcribe language `{l}`; use a multilingual model such as `base`"
                    )));
                }
            }
            if task == Task::Translate {
                return Err(Error::InvalidArgument(
                    "this model is English-only and cannot translate; use a multilingual model such as `base`".into(),
                ));
            }
            return Ok(vec![self.sot]);
        }
        let mut seq = vec![self.sot];
        if let Some(l) = language {
            let token = self.language_token(l).ok_or_else(|| {
                let known: Vec<&str> = self.languages.iter().map(|(c, _)| c.as_str()).collect();
                Error::InvalidArgument(format!(
                    "unknown language `{l}`; known codes: {}",
                    known.join(", ")
                ))
            })?;
            seq.push(token);
        }
        seq.push(match task {
            Task::Transcribe => self.transcribe,
            Task::Translate => self.translate,
        });
        Ok(seq)
    }

    /// Tokens of plain text; no special tokens are added (the tokenizer.json post-processor would
    /// otherwise wrap the text in a prompt).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(format!("cannot encode {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    fn decode_text(&self, tokens: &[u32]) -> String {
        if tokens.is_empty() {
            return String::new();
        }
        // Byte-level decoding replaces invalid UTF-8 rather than failing; an error here would
        // mean a broken tokenizer, which loading already rejected, so it degrades to nothing.
        self.inner.decode(tokens, false).unwrap_or_else(|e| {
            tracing::warn!(
                "tokenizer {}: cannot decode {tokens:?}: {e}",
                self.path.display()
            );
            String::new()
        })
    }

    /// Text of the tokens, dropping every token >= eot (special tokens and timestamps).
    pub fn decode(&self, tokens: &[u32]) -> String {
        let text: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.eot).collect();
        self.decode_text(&text)
    }

    /// Text with timestamp tokens written as `<|1.08|>`; other special tokens are dropped.
    pub fn decode_with_timestamps(&self, tokens: &[u32]) -> String {
        let mut out = String::new();
        let mut run: Vec<u32> = Vec::new();
        for &t in tokens {
            if t < self.eot {
                run.push(t);
            } else if self.is_timestamp(t) {
                out.push_str(&self.decode_text(&run));
                run.clear();
                // Integer centiseconds, so the text is exact (0.02 s is not representable in f32).
                let cs = (t - self.timestamp_begin) * 2;
                out.push_str(&format!("<|{}.{:02}|>", cs / 100, cs % 100));
            }
        }
        out.push_str(&self.decode_text(&run));
        out
    }

    /// Whether `t` is one of the `<|0.00|>`..`<|30.00|>` tokens.
    pub fn is_timestamp(&self, t: u32) -> bool {
        t >= self.timestamp_begin && (t as usize) < self.vocab_size
    }

    /// Seconds of a timestamp token (0.02 s per step), `None` for other tokens.
    pub fn timestamp_secs(&self, t: u32) -> Option<f32> {
        self.is_timestamp(t)
            .then(|| (t - self.timestamp_begin) as f32 * SECS_PER_TIMESTAMP)
    }

    /// The tokens openai-whisper suppresses by default (`suppress_tokens=[-1]`): symbols that
    /// start speaker tags and sound annotations, and a hyphen or quote at the start of a word.
    /// Sorted, without duplicates.
    pub fn non_speech_tokens(&self) -> Vec<u32> {
        let encode = |s: &str| self.encode(s).unwrap_or_default();
        let mut result: Vec<u32> = Vec::new();
        // Hyphens and apostrophes are fine inside words, only the space-prefixed forms go.
        for s in [" -", " '"] {
            result.extend(encode(s).first());
        }
        for &symbol in NON_SPEECH_SYMBOLS.iter().chain(MUSIC_SYMBOLS) {
            let music = MUSIC_SYMBOLS.contains(&symbol);
            for tokens in [encode(symbol), encode(&format!(" {symbol}"))] {
                if tokens.len() == 1 || (music && !tokens.is_empty()) {
                    result.push(tokens[0]);
                }
            }
        }
        result.sort_unstable();
        result.dedup();
        result
    }

    /// The raw UTF-8 bytes of a text token (a token may hold part of a character); empty for
    /// special tokens and timestamps.
    pub fn token_bytes(&self, token: u32) -> Vec<u8> {
        if token >= self.eot {
            return Vec::new();
        }
        let spelled = self.inner.id_to_token(token).unwrap_or_default();
        spelled
            .chars()
            .map(byte_of_char)
            .collect::<Option<Vec<u8>>>()
            .unwrap_or_else(|| self.decode_text(&[token]).into_bytes())
    }

    /// Number of token ids the model can produce, timestamps included (older tokenizer.json
    /// files omit the timestamp tokens, so this is not the tokenizer's own count).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_code_shape() {
        assert_eq!(language_code_of("<|en|>"), Some("en"));
        assert_eq!(language_code_of("<|haw|>"), Some("haw"));
        assert_eq!(language_code_of("<|0.00|>"), None);
        assert_eq!(language_code_of("<|transcribe|>"), None);
        assert_eq!(language_code_of("en"), None);
    }

    #[test]
    fn byte_level_characters() {
        assert_eq!(byte_of_char('A'), Some(b'A'));
        assert_eq!(byte_of_char('Ġ'), Some(b' '));
        assert_eq!(byte_of_char('Ċ'), Some(b'\n'));
        assert_eq!(byte_of_char('Ã'), Some(0xc3));
        assert_eq!(byte_of_char(' '), None);
        assert_eq!(language_name("en"), Some("english"));
        assert_eq!(language_name("iw"), Some("hebrew"));
        assert_eq!(language_name("xx"), None);
    }

    #[test]
    fn language_names_are_unique() {
        let mut codes: Vec<&str> = LANGUAGE_NAMES.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), LANGUAGE_NAMES.len());
        assert_eq!(LANGUAGE_NAMES.len(), 100);
    }
}
