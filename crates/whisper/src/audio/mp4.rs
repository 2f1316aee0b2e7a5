//! MP4 edit lists: the encoder priming FFmpeg skips and symphonia's MP4 reader does not.

use std::io::{Read, Seek, SeekFrom};
use std::sync::OnceLock;

use symphonia::core::errors::{Error as SymError, Result as SymResult};
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, ReadBytes};
use symphonia::core::probe::{Instantiate, Probe, QueryDescriptor};
use symphonia::default::formats::IsoMp4Reader;

use super::mp4check::MAX_MOOV_BYTES;

/// Leading media time an MP4 edit list skips, in the track's media timescale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Priming {
    pub(crate) media_time: u64,
    pub(crate) timescale: u32,
}

/// The encoder priming of the first sound track of an MP4/M4A file, from its edit list
/// (`moov/trak/edts/elst`, first non-empty edit) and media timescale (`mdia/mdhd`); `Ok(None)`
/// for anything else or anything malformed (then nothing is skipped and symphonia reports
/// errors). Refuses a `moov` too large to read. (The structure check runs
/// where the probe finds the container: [`probe`].)
pub(crate) fn mp4_inspect<R: Read + Seek>(src: &mut R) -> Result<Option<Priming>, String> {
    let Some(moov) = load_moov(src, 0)? else { return Ok(None) };
    let priming = boxes(&moov).filter(|(t, _)| t == b"trak").find_map(|(_, trak)| trak_priming(trak));
    Ok(priming)
}

/// symphonia's probe (the formats we build it with, in its order) with the MP4 reader guarded:
/// wherever the probe finds an MP4 `ftyp` box (it scans up to 1 MB into the data, so the
/// container need not start the file), the file passes [`super::mp4check::check_mp4`] from
/// there before symphonia's reader sees it. A refusal comes back as an `InvalidData` I/O error
/// carrying a [`Refused`]; [`refusal`] reads it.
pub(crate) fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let mut probe = Probe::default();
        // Registered first, so it answers the `ftyp` marker before symphonia's own reader.
        for descriptor in IsoMp4Reader::query() {
            let mut guarded = *descriptor;
            guarded.inst = Instantiate::Format(guarded_mp4_reader);
            probe.register(&guarded);
        }
        symphonia::default::register_enabled_formats(&mut probe);
        probe
    })
}

/// Why the guard refused an MP4 container.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The guard's reason, if `e` is its refusal.
pub(crate) fn refusal(e: &SymError) -> Option<&str> {
    match e {
        SymError::IoError(io) => io.get_ref()?.downcast_ref::<Refused>().map(|r| r.0.as_str()),
        _ => None,
    }
}

fn guarded_mp4_reader(mut mss: MediaSourceStream, opts: &FormatOptions) -> SymResult<Box<dyn FormatReader>> {
    // The probe leaves the stream at the `ftyp` marker, 4 bytes into the box.
    let start = mss.pos().saturating_sub(4);
    if let Err(reason) = super::mp4check::check_mp4(&mut mss, start) {
        return Err(SymError::IoError(std::io::Error::new(std::io::ErrorKind::InvalidData, Refused(reason))));
    }
    // Back to the marker with the box's first 4 bytes buffered: the reader steps back over them.
    mss.seek(SeekFrom::Start(start))?;
    let mut size = [0u8; 4];
    mss.read_exact(&mut size)?;
    Ok(Box::new(<IsoMp4Reader as FormatReader>::try_new(mss, opts)?))
}

/// The payload of the `moov` box of the MP4 file whose `ftyp` box is at `start` (`None`: not
/// MP4, or no `moov` found).
fn load_moov<R: Read + Seek>(src: &mut R, start: u64) -> Result<Option<Vec<u8>>, String> {
    let mut head = [0u8; 8];
    if src.seek(SeekFrom::Start(start)).is_err() || src.read_exact(&mut head).is_err() || &head[4..8] != b"ftyp" {
        return Ok(None);
    }
    // Walk the top-level boxes (moov is often after the media data) and load moov.
    let mut pos = start;
    loop {
        if src.seek(SeekFrom::Start(pos)).is_err() || src.read_exact(&mut head).is_err() {
            return Ok(None);
        }
        let (size, header) = match be_u32(&head[..4]) {
            1 => {
                let mut big = [0u8; 8];
                if src.read_exact(&mut big).is_err() {
                    return Ok(None);
                }
                (u64::from_be_bytes(big), 16)
            }
            0 => return Ok(None), // last box runs to the end: no moov after it
            n => (n as u64, 8),
        };
        if size < header {
            return Ok(None);
        }
        if &head[4..8] == b"moov" {
            if size > MAX_MOOV_BYTES {
                return Err(format!("its MP4 `moov` box is {size} bytes, more than the {MAX_MOOV_BYTES} this reader accepts; re-encode the file (e.g. `ffmpeg -i in.m4a out.wav`)"));
            }
            // Read what is there (a cut file's moov is shorter than it says): never allocate
            // the declared size up front.
            let mut moov = Vec::new();
            src.take(size - header).read_to_end(&mut moov).map_err(|e| format!("cannot read file: {e}"))?;
            return Ok(Some(moov));
        }
        let Some(next) = pos.checked_add(size) else { return Ok(None) };
        pos = next;
    }
}

fn trak_priming(trak: &[u8]) -> Option<Priming> {
    let mdia = child(trak, b"mdia")?;
    let hdlr = child(mdia, b"hdlr")?;
    if hdlr.get(8..12)? != b"soun" {
        return None;
    }
    let mdhd = child(mdia, b"mdhd")?;
    let timescale = match mdhd.first()? {
        0 => be_u32(mdhd.get(12..16)?),
        1 => be_u32(mdhd.get(20..24)?),
        _ => return None,
    };
    let elst = child(child(trak, b"edts")?, b"elst")?;
    let version = *elst.first()?;
    let count = be_u32(elst.get(4..8)?) as usize;
    let entry_len = if version == 1 { 20 } else { 12 };
    (0..count.min(64)).find_map(|i| {
        let e = elst.get(8 + i * entry_len..8 + (i + 1) * entry_len)?;
        let media_time = if version == 1 {
            i64::from_be_bytes(e[8..16].try_into().ok()?)
        } else {
            be_u32(&e[4..8]) as i32 as i64
        };
        // media_time −1 marks an empty edit (a gap), not a skip.
        (media_time >= 0).then_some(Priming {
            media_time: media_time as u64,
            timescale,
        })
    })
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Payload of the first child box of type `kind`.
fn child<'a>(parent: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(parent).find(|(t, _)| t == kind).map(|(_, body)| body)
}

/// The (type, payload) of each box in `buf`, stopping at the first malformed header.
fn boxes(buf: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let head = buf.get(pos..pos + 8)?;
        let kind: [u8; 4] = head[4..8].try_into().ok()?;
        let (size, header) = match be_u32(&head[..4]) {
            1 => (
                u64::from_be_bytes(buf.get(pos + 8..pos + 16)?.try_into().ok()?) as usize,
                16,
            ),
            0 => (buf.len() - pos, 8),
            n => (n as usize, 8),
        };
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= buf.len() && size >= header)?;
        let body = &buf[pos + header..end];
        pos = end;
        Some((kind, body))
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Cursor;

    /// An MP4 box: big-endian size, type, payload.
    pub(in crate::audio) fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    /// A minimal MP4 skeleton with one track of `handler` whose edit list skips `media_time`
    /// (edit list version 0 or 1), media timescale 48000; `moov_first` puts moov before mdat.
    fn mp4(handler: &[u8; 4], media_time: i64, version: u8, moov_first: bool) -> Vec<u8> {
        let mut elst = vec![version, 0, 0, 0];
        elst.extend_from_slice(&2u32.to_be_bytes());
        for mt in [-1, media_time] {
            if version == 1 {
                elst.extend_from_slice(&1000u64.to_be_bytes());
                elst.extend_from_slice(&mt.to_be_bytes());
            } else {
                elst.extend_from_slice(&1000u32.to_be_bytes());
                elst.extend_from_slice(&(mt as i32).to_be_bytes());
            }
            elst.extend_from_slice(&[0, 1, 0, 0]);
        }
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 12]);
        let mut mdhd = vec![0u8; 12];
        mdhd.extend_from_slice(&48_000u32.to_be_bytes());
        mdhd.extend_from_slice(&[0; 8]);
        let mdia = [mp4_box(b"mdhd", &mdhd), mp4_box(b"hdlr", &hdlr)].concat();
        let trak = [
            mp4_box(b"edts", &mp4_box(b"elst", &elst)),
            mp4_box(b"mdia", &mdia),
        ]
        .concat();
        let moov = mp4_box(b"moov", &mp4_box(b"trak", &trak));
        let mdat = mp4_box(b"mdat", &[0xAB; 100]);
        let ftyp = mp4_box(b"ftyp", b"M4A \0\0\0\0");
        if moov_first {
            [ftyp, moov, mdat].concat()
        } else {
            [ftyp, mdat, moov].concat()
        }
    }

    fn priming<R: Read + Seek>(src: &mut R) -> Option<Priming> {
        mp4_inspect(src).ok().flatten()
    }

    #[test]
    fn mp4_priming_from_edit_list() {
        let want = Some(Priming {
            media_time: 1024,
            timescale: 48_000,
        });
        for version in [0, 1] {
            for moov_first in [true, false] {
                let file = mp4(b"soun", 1024, version, moov_first);
                assert_eq!(
                    priming(&mut Cursor::new(&file)),
                    want,
                    "v{version} {moov_first}"
                );
            }
        }
        // Not a sound track, not MP4, or cut before moov: no priming, no panic.
        assert_eq!(
            priming(&mut Cursor::new(mp4(b"vide", 1024, 0, true))),
            None
        );
        assert_eq!(
            priming(&mut Cursor::new(b"RIFF\0\0\0\0WAVE".to_vec())),
            None
        );
        let file = mp4(b"soun", 1024, 0, false);
        for cut in [0, 5, 20, 40, file.len() - 30, file.len() - 1] {
            assert_eq!(
                priming(&mut Cursor::new(&file[..cut])),
                None,
                "cut at {cut}"
            );
        }
    }
}
