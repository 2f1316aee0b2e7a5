//! Where audio comes from: a file, stdin (`-`), bytes, or raw s16le at a given rate.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Channels, Signal, SignalSpec};

use super::container::Emit;
use super::swr::Converter;
use crate::{Error, Result};

/// Default cap on encoded audio read from a pipe (stdin): 4 GiB.
pub const DEFAULT_STDIN_LIMIT: u64 = 4 << 30;

/// An audio input.
pub enum AudioInput {
    /// A file in any supported container.
    Path(PathBuf),
    /// A stream of a file in any supported container (e.g. stdin). It is copied to an
    /// unlinked temp file first (containers need seeking); more than `limit` bytes is an error.
    Reader {
        reader: Box<dyn Read + Send>,
        label: String,
        limit: u64,
    },
    /// A file held in memory; `ext` hints the container ("wav", "mp3", ...).
    Bytes { data: Vec<u8>, ext: Option<String> },
    /// Headerless little-endian signed 16-bit mono PCM at `rate` Hz, from `from` (a path, a
    /// reader or bytes), converted as a 16-bit WAV at that rate would be.
    RawS16le { from: Box<AudioInput>, rate: u32 },
}

impl std::fmt::Debug for AudioInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AudioInput({})", self.label().display())
    }
}

impl AudioInput {
    /// A command-line argument: `-` is stdin (with [`DEFAULT_STDIN_LIMIT`]), anything else a
    /// path.
    pub fn from_arg(arg: &str) -> AudioInput {
        if arg == "-" {
            AudioInput::stdin(DEFAULT_STDIN_LIMIT)
        } else {
            AudioInput::Path(PathBuf::from(arg))
        }
    }

    /// Standard input, refusing more than `limit` bytes.
    pub fn stdin(limit: u64) -> AudioInput {
        AudioInput::Reader {
            reader: Box::new(std::io::stdin()),
            label: "<stdin>".into(),
            limit,
        }
    }

    /// Reinterprets this input as raw s16le mono at `rate` Hz.
    pub fn raw_s16le(self, rate: u32) -> AudioInput {
        AudioInput::RawS16le {
            from: Box::new(self),
            rate,
        }
    }

    /// How errors name this input.
    pub fn label(&self) -> PathBuf {
        match self {
            AudioInput::Path(p) => p.clone(),
            AudioInput::Reader { label, .. } => PathBuf::from(label),
            AudioInput::Bytes { ext: Some(e), .. } => PathBuf::from(format!("<audio data .{e}>")),
            AudioInput::Bytes { ext: None, .. } => PathBuf::from("<audio data>"),
            AudioInput::RawS16le { from, .. } => from.label(),
        }
    }

    /// Decodes the whole input into memory.
    pub fn decode(self) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.stream(&mut |s| {
            out.extend_from_slice(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// As [`AudioInput::stream`], but decoding stops with [`Error::AudioTooLong`] as soon as
    /// the samples would pass `max_secs` seconds (before `emit` sees the sample past the
    /// limit): a small file that decodes to hours is refused without holding the hours.
    pub fn stream_limited(self, max_secs: Option<f64>, emit: &mut Emit<'_>) -> Result<u64> {
        let Some(max_secs) = max_secs else {
            return self.stream(emit);
        };
        let label = self.label();
        let max_samples = (max_secs.max(0.0) * super::SAMPLE_RATE as f64) as u64;
        let mut seen = 0u64;
        let mut over = false;
        let result = self.stream(&mut |s| {
            seen += s.len() as u64;
            if seen > max_samples {
                over = true;
                return Err("over the length limit".into());
            }
            emit(s)
        });
        match result {
            Err(_) if over => Err(Error::AudioTooLong {
                path: label,
                limit_secs: max_secs,
            }),
            r => r,
        }
    }

    /// Decodes the whole input into memory, refusing more than `max_secs` seconds of audio.
    pub fn decode_limited(self, max_secs: Option<f64>) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.stream_limited(max_secs, &mut |s| {
            out.extend_from_slice(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// Streams 16 kHz mono samples to `emit`; returns how many there were.
    pub fn stream(self, emit: &mut Emit<'_>) -> Result<u64> {
        let label = self.label();
        match self {
            AudioInput::Path(p) => super::decode_file(&p, emit),
            AudioInput::Bytes { data, ext } => super::decode_bytes(data, ext.as_deref(), emit),
            AudioInput::Reader { reader, limit, .. } => {
                let (file, len) = copy_bounded(reader, limit, &label)?;
                if len == 0 {
                    return Err(Error::Audio {
                        path: label,
                        reason: "no data (0 bytes); nothing was piped in".into(),
                    });
                }
                let mut file = file;
                if let Some(repaired) = super::repaired_ogg(&mut file, &label)? {
                    return super::decode_bytes_labelled(repaired, None, &label, emit);
                }
                let priming = super::mp4::mp4_inspect(&mut file).map_err(|reason| Error::Audio { path: label.clone(), reason })?;
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io(&label, e))?;
                super::container::decode_guarded(Box::new(file), len, None, priming, &label, emit)
            }
            AudioInput::RawS16le { from, rate } => {
                let reader: Box<dyn Read> = match *from {
                    AudioInput::Path(p) => Box::new(File::open(&p).map_err(|e| Error::Audio {
                        path: p.clone(),
                        reason: format!("cannot open file: {e}"),
                    })?),
                    AudioInput::Reader { reader, .. } => reader,
                    AudioInput::Bytes { data, .. } => Box::new(std::io::Cursor::new(data)),
                    AudioInput::RawS16le { .. } => {
                        return Err(Error::InvalidArgument("raw input declared twice".into()))
                    }
                };
                decode_raw(reader, rate, &label, emit)
            }
        }
    }
}

/// Converts raw s16le mono at `rate` through the same converter as a decoded 16-bit WAV.
fn decode_raw(
    mut reader: Box<dyn Read>,
    rate: u32,
    label: &Path,
    emit: &mut Emit<'_>,
) -> Result<u64> {
    let fail = |reason: String| Error::Audio {
        path: label.to_path_buf(),
        reason,
    };
    if !(1000..=1_000_000).contains(&rate) {
        return Err(fail(format!(
            "raw input rate {rate} Hz is out of range (1000..=1000000)"
        )));
    }
    const CHUNK: usize = 1 << 15;
    let spec = SignalSpec::new(rate, Channels::FRONT_LEFT);
    let mut bytes = vec![0u8; 2 * CHUNK];
    let mut have = 0usize;
    let mut conv: Option<Converter> = None;
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut n_out = 0u64;
    loop {
        let n = match reader.read(&mut bytes[have..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(format!("read error: {e}"))),
        };
        have += n;
        let end = n == 0;
        let frames = have / 2;
        if frames > 0 && (end || have == bytes.len()) {
            let mut buf = AudioBuffer::<i16>::new(frames as u64, spec);
            buf.render_reserved(Some(frames));
            for (d, b) in buf.chan_mut(0).iter_mut().zip(bytes.chunks_exact(2)) {
                *d = i16::from_le_bytes([b[0], b[1]]);
            }
            let r = AudioBufferRef::S16(std::borrow::Cow::Borrowed(&buf));
            let c = conv.get_or_insert_with(|| Converter::new(&r, Some(16)));
            out.clear();
            c.push(&r, 0, &mut out);
            emit(&out).map_err(&fail)?;
            n_out += out.len() as u64;
            total += frames as u64;
            let rest = have - 2 * frames;
            bytes.copy_within(2 * frames..have, 0);
            have = rest;
        }
        if end {
            break;
        }
    }
    if have == 1 {
        tracing::warn!(
            "{}: raw s16le input ends with half a sample; dropped",
            label.display()
        );
    }
    if total == 0 {
        return Err(fail(
            "no raw samples (0 bytes); nothing to transcribe".into(),
        ));
    }
    if let Some(mut c) = conv {
        out.clear();
        c.finish(&mut out);
        emit(&out).map_err(&fail)?;
        n_out += out.len() as u64;
    }
    Ok(n_out)
}

/// Copies a stream into an unlinked temp file, refusing more than `limit` bytes.
fn copy_bounded(mut reader: Box<dyn Read + Send>, limit: u64, label: &Path) -> Result<(File, u64)> {
    let mut file = unlinked_temp_file().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Audio {
                    path: label.to_path_buf(),
                    reason: format!("read error: {e}"),
                })
            }
        };
        len += n as u64;
        if len > limit {
            return Err(Error::Audio {
                path: label.to_path_buf(),
                reason: format!(
                    "more than {} MB of input; the limit is {} MB (pass a file instead, or raise \
                     the limit)",
                    limit >> 20,
                    limit >> 20
                ),
            });
        }
        file.write_all(&buf[..n])
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    }
    Ok((file, len))
}

/// A new read-write file in the system temp directory, already unlinked: it vanishes when
/// closed, whatever happens to the process.
pub(crate) fn unlinked_temp_file() -> std::io::Result<File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    for _ in 0..100 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            ".amanuensis-{}-{}-{nanos}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("could not create a unique temp file"))
}
