//! The structure check an MP4 file passes before symphonia's MP4 reader opens it.
//!
//! symphonia 0.5's reader trusts what a file declares: a sample table's entry count becomes a
//! `Vec::with_capacity`, an atom's size becomes a buffer, before a byte of it is read. A few
//! kilobytes declaring billions of entries make it allocate tens of gigabytes, and a failed
//! allocation aborts the process (no panic guard helps): one hostile upload would take the
//! server down (found by the `audio_decode` fuzz target, three times). So every atom the
//! reader parses when it opens a file (the `moov` and `meta` trees) must lie within its parent
//! and within the data that is actually there, and every table must hold the entries it
//! declares; the reader's allocations are then bounded by the file's size. Media data (`mdat`)
//! is not read here, so a file cut short in its media still decodes up to the cut.

use std::io::{Read, Seek, SeekFrom};

/// Largest `moov` or top-level `meta` read to check (real ones are kilobytes to a few MB).
pub(crate) const MAX_MOOV_BYTES: u64 = 64 << 20;
/// Deepest nesting followed (real files nest 6-8 levels).
const MAX_DEPTH: usize = 16;

/// Atoms whose payload is a list of atoms, and how many bytes come before that list.
fn children_offset(kind: &[u8; 4]) -> Option<usize> {
    match kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"dinf" | b"udta" | b"mvex" | b"ilst" => Some(0),
        // Version and flags first.
        b"meta" => Some(4),
        // Version, flags and the entry count; the sample entries are atoms.
        b"stsd" | b"dref" => Some(8),
        _ => None,
    }
}

fn refuse(what: String) -> String {
    format!("damaged MP4: {what}; re-encode the file (e.g. `ffmpeg -i in.m4a out.wav`)")
}

fn name(kind: &[u8]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Checks the MP4 file whose first atom is at `start` (see the module's documentation).
pub(crate) fn check_mp4<R: Read + Seek>(src: &mut R, start: u64) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot read file: {e}");
    let total = src.seek(SeekFrom::End(0)).map_err(io)?;
    let mut pos = start;
    let mut head = [0u8; 16];
    // The top level, as the reader walks it: it parses every `moov` and `meta`.
    while pos.saturating_add(8) <= total {
        src.seek(SeekFrom::Start(pos)).map_err(io)?;
        src.read_exact(&mut head[..8]).map_err(io)?;
        let kind: [u8; 4] = head[4..8].try_into().expect("4 bytes");
        let (size, header) = match be_u32(&head[..4]) {
            1 => {
                if src.read_exact(&mut head[8..16]).is_err() {
                    return Ok(()); // the reader fails on the cut header itself
                }
                (u64::from_be_bytes(head[8..16].try_into().expect("8 bytes")), 16)
            }
            0 => (total - pos, 8),
            n => (n as u64, 8),
        };
        if size < header {
            return Ok(()); // the reader refuses the size itself
        }
        if &kind == b"moov" || &kind == b"meta" {
            if size > MAX_MOOV_BYTES {
                return Err(format!("its MP4 `{}` box is {size} bytes, more than the {MAX_MOOV_BYTES} this reader accepts; re-encode the file (e.g. `ffmpeg -i in.m4a out.wav`)", name(&kind)));
            }
            if pos + size > total {
                return Err(refuse(format!("its `{}` box ({size} bytes) is cut short at {} bytes", name(&kind), total - pos)));
            }
            let mut body = vec![0u8; (size - header) as usize];
            src.read_exact(&mut body).map_err(io)?;
            check_children(&kind, &body, total, 0)?;
        }
        match pos.checked_add(size) {
            Some(next) if next > pos => pos = next,
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Checks the atoms inside `parent` (its payload `body`).
fn check_children(parent: &[u8; 4], body: &[u8], total: u64, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(refuse(format!("its atoms nest more than {MAX_DEPTH} deep")));
    }
    let Some(skip) = children_offset(parent) else { return Ok(()) };
    let mut pos = skip.min(body.len());
    while body.len() - pos >= 8 {
        let head = &body[pos..];
        let kind: [u8; 4] = head[4..8].try_into().expect("4 bytes");
        let (size, header) = match be_u32(&head[..4]) {
            1 => match head.get(8..16) {
                Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 16u64),
                None => return Err(refuse(format!("a `{}` atom in `{}` is cut short", name(&kind), name(parent)))),
            },
            0 => ((body.len() - pos) as u64, 8),
            n => (n as u64, 8),
        };
        if size < header {
            return Ok(()); // the reader refuses the size itself
        }
        let room = (body.len() - pos) as u64;
        if size > room {
            return Err(refuse(format!("its `{}` atom claims {size} bytes where its `{}` holds {room}", name(&kind), name(parent))));
        }
        let payload = &body[pos + header as usize..pos + size as usize];
        check_table(&kind, payload, total)?;
        if children_offset(&kind).is_some() {
            check_children(&kind, payload, total, depth + 1)?;
        }
        pos += size as usize;
    }
    Ok(())
}

/// A sample table must hold the entries it declares; a sample's size must fit in the file.
fn check_table(kind: &[u8; 4], body: &[u8], total: u64) -> Result<(), String> {
    // (offset of the entry count, bytes per entry) after the version and flags.
    let (at, size) = match kind {
        b"stts" | b"ctts" | b"co64" => (4, 8),
        b"stsc" => (4, 12),
        b"stco" | b"stss" => (4, 4),
        b"stsd" | b"dref" => (4, 8),
        // A sample size table lists sizes only when they differ (size 0).
        b"stsz" => match body.get(4..8).map(be_u32) {
            Some(0) => (8, 4),
            Some(fixed) if fixed as u64 > total => {
                return Err(refuse(format!("its samples claim {fixed} bytes each in a file of {total}")));
            }
            _ => return Ok(()),
        },
        b"stz2" => (8, 0),
        _ => return Ok(()),
    };
    let Some(count) = body.get(at..at + 4).map(be_u32) else {
        return Err(refuse(format!("its `{}` table is cut short", name(kind))));
    };
    let room = body.len().saturating_sub(at + 4) as u64;
    let need = count as u64 * size.max(1) as u64 / if size == 0 { 2 } else { 1 };
    if need > room {
        return Err(refuse(format!("its `{}` table claims {count} entries in {room} bytes", name(kind))));
    }
    if kind == b"stsz" {
        let sizes = body[at + 4..at + 4 + 4 * count as usize].chunks_exact(4).map(be_u32);
        if let Some(big) = sizes.into_iter().find(|&s| s as u64 > total) {
            return Err(refuse(format!("a sample claims {big} bytes in a file of {total}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::mp4::tests::mp4_box as atom;
    use std::io::Cursor;

    /// ftyp, then moov/trak/mdia/minf/stbl holding `table`, then `tail` bytes of media.
    fn file(table: Vec<u8>, cut: usize) -> Vec<u8> {
        let stbl = atom(b"stbl", &table);
        let moov = atom(b"moov", &atom(b"trak", &atom(b"mdia", &atom(b"minf", &stbl))));
        let mut f = [atom(b"ftyp", b"M4A \0\0\0\0"), moov, atom(b"mdat", &[7; 64])].concat();
        f.truncate(f.len() - cut);
        f
    }

    fn stsc(count: u32, entries: usize) -> Vec<u8> {
        let mut b = vec![0u8; 4];
        b.extend_from_slice(&count.to_be_bytes());
        b.extend(std::iter::repeat(1u8).take(12 * entries));
        atom(b"stsc", &b)
    }

    #[test]
    fn tables_must_hold_what_they_declare_even_in_a_cut_parent() {
        let ok = file(stsc(2, 2), 0);
        assert_eq!(check_mp4(&mut Cursor::new(&ok), 0), Ok(()));
        // Media cut short: still fine (the media is not read here).
        assert_eq!(check_mp4(&mut Cursor::new(&file(stsc(2, 2), 30)), 0), Ok(()));
        let e = check_mp4(&mut Cursor::new(&file(stsc(4_000_000_000, 1), 0)), 0).unwrap_err();
        assert!(e.contains("`stsc` table claims 4000000000 entries"), "{e}");
        // The same table in a moov cut by the end of the data.
        let mut cut = file(stsc(4_000_000_000, 1), 0);
        cut.truncate(cut.len() - 64 - 8 - 4);
        let e = check_mp4(&mut Cursor::new(&cut), 0).unwrap_err();
        assert!(e.contains("cut short"), "{e}");
        // A child running past its parent.
        let mut over = stsc(1, 1);
        over[..4].copy_from_slice(&1000u32.to_be_bytes());
        let e = check_mp4(&mut Cursor::new(&file(over, 0)), 0).unwrap_err();
        assert!(e.contains("`stsc` atom claims 1000 bytes"), "{e}");
        // A sample size larger than the file.
        let mut stsz = vec![0u8; 8];
        stsz.extend_from_slice(&1u32.to_be_bytes());
        stsz.extend_from_slice(&u32::MAX.to_be_bytes());
        let e = check_mp4(&mut Cursor::new(&file(atom(b"stsz", &stsz), 0)), 0).unwrap_err();
        assert!(e.contains("a sample claims 4294967295 bytes"), "{e}");
        // Found at an offset (junk before the MP4).
        let mut junk = vec![0xEEu8; 100];
        junk.extend(file(stsc(4_000_000_000, 1), 0));
        assert!(check_mp4(&mut Cursor::new(&junk), 100).is_err());
    }
}
