//! Ogg pages with a wrong checksum. symphonia's Ogg reader skips such a page in the body but
//! fails the whole file when one is among the first pages it reads (the headers and the first
//! audio); FFmpeg skips the page and goes on. So a file is checked page by page first, and
//! when a page is bad the file is decoded without it (with a warning).

use std::io::{BufReader, Read};
use std::ops::Range;

/// Byte ranges of the pages of an Ogg stream whose CRC is wrong. The walk stops (keeping what
/// it found) at anything that is not a whole page: the reader resynchronises past that itself.
pub(crate) fn bad_pages(reader: impl Read) -> std::io::Result<Vec<Range<u64>>> {
    let mut r = BufReader::with_capacity(1 << 16, reader);
    let table = crc_table();
    let mut bad = Vec::new();
    let mut at = 0u64;
    let mut page = Vec::with_capacity(1 << 16);
    loop {
        let mut header = [0u8; 27];
        if read_full(&mut r, &mut header)? < 27 || &header[..4] != b"OggS" {
            return Ok(bad);
        }
        let mut lacing = vec![0u8; header[26] as usize];
        if read_full(&mut r, &mut lacing)? < lacing.len() {
            return Ok(bad);
        }
        let body_len: usize = lacing.iter().map(|&l| l as usize).sum();
        page.clear();
        page.extend_from_slice(&header);
        page.extend_from_slice(&lacing);
        let head_len = page.len();
        page.resize(head_len + body_len, 0);
        if read_full(&mut r, &mut page[head_len..])? < body_len {
            return Ok(bad);
        }
        let want = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
        page[22..26].fill(0);
        let len = page.len() as u64;
        if crc(&table, &page) != want {
            bad.push(at..at + len);
        }
        at += len;
    }
}

/// The bytes of `reader` without the `drop` ranges (in order, not overlapping).
pub(crate) fn without(mut reader: impl Read, drop: &[Range<u64>]) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    reader.read_to_end(&mut all)?;
    let mut out = Vec::with_capacity(all.len());
    let mut from = 0usize;
    for r in drop {
        out.extend_from_slice(&all[from..r.start as usize]);
        from = r.end as usize;
    }
    out.extend_from_slice(&all[from..]);
    Ok(out)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Ogg's CRC-32: polynomial 0x04c11db7, initial value 0, no reflection.
fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    for (i, e) in t.iter_mut().enumerate() {
        let mut c = (i as u32) << 24;
        for _ in 0..8 {
            c = if c & 0x8000_0000 != 0 { (c << 1) ^ 0x04c1_1db7 } else { c << 1 };
        }
        *e = c;
    }
    t
}

fn crc(table: &[u32; 256], data: &[u8]) -> u32 {
    data.iter().fold(0u32, |c, &b| (c << 8) ^ table[((c >> 24) as u8 ^ b) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_page_with_a_bad_crc() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/audio/formats/librivox_0880.ogg");
        let bytes = std::fs::read(path).unwrap();
        assert!(bad_pages(&bytes[..]).unwrap().is_empty(), "an intact file has no bad page");
        let mut b = bytes.clone();
        b[3703 + 22] ^= 1;
        let bad = bad_pages(&b[..]).unwrap();
        assert_eq!(bad, vec![3703..9960]);
        assert_eq!(without(&b[..], &bad).unwrap().len(), bytes.len() - (9960 - 3703));
    }
}
