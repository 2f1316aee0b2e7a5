//! 16 kHz mono samples readable by range, so long inputs need not sit in memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::input::{unlinked_temp_file, AudioInput};
use crate::{Error, Result};

/// A clip of 16 kHz mono f32 samples of known length, read by range.
///
/// Implementations are cheap to share between threads (`&self` reads).
pub trait SampleSource: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `out` with samples `start..start + out.len()`, which must lie within `len()`.
    fn read_into(&self, start: usize, out: &mut [f32]) -> Result<()>;

    /// Samples `range` (clamped to `len()`).
    fn read(&self, range: Range<usize>) -> Result<Vec<f32>> {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        let mut out = vec![0f32; end - start];
        self.read_into(start, &mut out)?;
        Ok(out)
    }
}

fn out_of_range(start: usize, n: usize, len: usize) -> Error {
    Error::InvalidArgument(format!(
        "sample range {start}..{} is outside the source's {len} samples",
        start + n
    ))
}

/// Samples held in memory.
#[derive(Clone, Debug, Default)]
pub struct VecSource(pub Vec<f32>);

impl SampleSource for VecSource {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read_into(&self, start: usize, out: &mut [f32]) -> Result<()> {
        let src = self
            .0
            .get(start..start + out.len())
            .ok_or_else(|| out_of_range(start, out.len(), self.0.len()))?;
        out.copy_from_slice(src);
        Ok(())
    }
}

impl<S: SampleSource + ?Sized> SampleSource for Arc<S> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn read_into(&self, start: usize, out: &mut [f32]) -> Result<()> {
        (**self).read_into(start, out)
    }
}

impl<S: SampleSource + ?Sized> SampleSource for Box<S> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn read_into(&self, start: usize, out: &mut [f32]) -> Result<()> {
        (**self).read_into(start, out)
    }
}

impl<S: SampleSource + ?Sized> SampleSource for &S {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn read_into(&self, start: usize, out: &mut [f32]) -> Result<()> {
        (**self).read_into(start, out)
    }
}

/// Samples spooled to an unlinked temporary file (f32 little-endian) and read back with
/// positioned reads (no mmap), so memory stays flat whatever the length: decoding streams
/// packet by packet, and reads cost only the range asked for.
#[derive(Debug)]
pub struct SpooledSource {
    file: File,
    len: usize,
    label: PathBuf,
}

impl SpooledSource {
    /// Decodes `input` as a stream into a new spool file in the system temp directory.
    pub fn from_input(input: AudioInput) -> Result<SpooledSource> {
        Self::from_input_limited(input, None)
    }

    /// As [`SpooledSource::from_input`], refusing audio longer than `max_secs` seconds
    /// ([`crate::Error::AudioTooLong`], raised while decoding).
    pub fn from_input_limited(input: AudioInput, max_secs: Option<f64>) -> Result<SpooledSource> {
        let label = input.label();
        let mut spool = Spooler::new(label)?;
        input.stream_limited(max_secs, &mut |s| spool.write(s))?;
        spool.finish()
    }

    /// Spools samples from memory (for tests and callers that have them already).
    pub fn from_samples(samples: &[f32]) -> Result<SpooledSource> {
        let mut spool = Spooler::new(PathBuf::from("<samples>"))?;
        spool.write(samples).map_err(Error::InvalidArgument)?;
        spool.finish()
    }
}

impl SampleSource for SpooledSource {
    fn len(&self) -> usize {
        self.len
    }
    fn read_into(&self, start: usize, out: &mut [f32]) -> Result<()> {
        if start + out.len() > self.len {
            return Err(out_of_range(start, out.len(), self.len));
        }
        // Read in bounded pieces through a small byte buffer.
        let mut bytes = vec![0u8; 4 * out.len().min(1 << 16)];
        for (i, chunk) in out.chunks_mut(1 << 16).enumerate() {
            let b = &mut bytes[..4 * chunk.len()];
            let pos = 4 * (start + i * (1 << 16)) as u64;
            self.file
                .read_exact_at(b, pos)
                .map_err(|e| Error::io(&self.label, e))?;
            for (o, q) in chunk.iter_mut().zip(b.chunks_exact(4)) {
                *o = f32::from_le_bytes([q[0], q[1], q[2], q[3]]);
            }
        }
        Ok(())
    }
}

/// Writes samples to an unlinked temp file.
struct Spooler {
    out: BufWriter<File>,
    len: usize,
    label: PathBuf,
}

impl Spooler {
    fn new(label: PathBuf) -> Result<Spooler> {
        let file = unlinked_temp_file().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        Ok(Spooler {
            out: BufWriter::with_capacity(1 << 16, file),
            len: 0,
            label,
        })
    }

    fn write(&mut self, s: &[f32]) -> std::result::Result<(), String> {
        for x in s {
            self.out.write_all(&x.to_le_bytes()).map_err(|e| {
                format!(
                    "cannot write the sample spool file in {}: {e}",
                    std::env::temp_dir().display()
                )
            })?;
        }
        self.len += s.len();
        Ok(())
    }

    fn finish(self) -> Result<SpooledSource> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(std::env::temp_dir(), e.into_error()))?;
        Ok(SpooledSource {
            file,
            len: self.len,
            label: self.label,
        })
    }
}

/// A view of several sample ranges of another source, concatenated into one contiguous
/// source (e.g. the speech chunks VAD keeps).
#[derive(Clone, Debug)]
pub struct Gather<S> {
    inner: S,
    ranges: Vec<Range<usize>>,
    /// `starts[i]`: position of range i in the gathered source; one more entry for the end.
    starts: Vec<usize>,
}

impl<S: SampleSource> Gather<S> {
    /// Presents `ranges` of `inner`, in the given order. Ranges must lie within `inner`.
    pub fn new(inner: S, ranges: Vec<Range<usize>>) -> Result<Gather<S>> {
        let mut starts = Vec::with_capacity(ranges.len() + 1);
        let mut at = 0usize;
        for r in &ranges {
            if r.start > r.end || r.end > inner.len() {
                return Err(Error::InvalidArgument(format!(
                    "range {r:?} is not within the source's {} samples",
                    inner.len()
                )));
            }
            starts.push(at);
            at += r.len();
        }
        starts.push(at);
        Ok(Gather {
            inner,
            ranges,
            starts,
        })
    }

    /// The gathered ranges, in order.
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// Position in the inner source of gathered sample `i` (`i < len()`).
    pub fn inner_position(&self, i: usize) -> usize {
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        self.ranges[k].start + (i - self.starts[k])
    }

    /// The inner source.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: SampleSource> SampleSource for Gather<S> {
    fn len(&self) -> usize {
        *self.starts.last().unwrap_or(&0)
    }
    fn read_into(&self, start: usize, out: &mut [f32]) -> Result<()> {
        if start + out.len() > self.len() {
            return Err(out_of_range(start, out.len(), self.len()));
        }
        let mut pos = start;
        let mut done = 0;
        // First range holding `start`, then the following ones.
        let mut k = self.starts.partition_point(|&s| s <= pos).saturating_sub(1);
        while done < out.len() {
            let r = &self.ranges[k];
            let off = pos - self.starts[k];
            let n = (r.len() - off).min(out.len() - done);
            self.inner
                .read_into(r.start + off, &mut out[done..done + n])?;
            done += n;
            pos += n;
            k += 1;
        }
        Ok(())
    }
}
