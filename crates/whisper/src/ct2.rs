//! Reader for CTranslate2's `model.bin`: memory-mapped, bounds-checked, named tensors.
//!
//! Layout (little-endian), as written by CTranslate2's converters since binary version 4:
//! `u32 version`, `str spec_name`, `u32 spec_revision`, `u32 n_variables`, then per variable
//! `str name`, `u8 rank`, `u32 dims[rank]`, `u8 dtype`, `u32 n_bytes`, `bytes`, and finally
//! `u32 n_aliases` with `str alias`, `str target` pairs. A `str` is a `u16` length (counting a
//! trailing NUL) followed by the bytes. Every read is checked against the file length, so a
//! truncated or corrupt file gives an error naming the file and the offset, never a panic.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::{Error, Result};

/// Binary versions this reader understands (version 4 introduced the dtype byte).
const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 4..=6;
/// No Whisper tensor has more dimensions than this; a larger rank means corruption.
const MAX_RANK: usize = 8;

/// Element type of a stored tensor, numbered as CTranslate2 numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(code: u8) -> Option<DType> {
        Some(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
        }
    }
}

#[derive(Debug)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: DType,
    offset: usize,
    len: usize,
}

/// A borrowed view of one tensor inside the mapped file.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub dtype: DType,
    pub bytes: &'a [u8],
}

impl TensorView<'_> {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Converts the tensor to f32 (int8 values are returned as-is; their scale is a separate
    /// tensor named `<name>_scale`).
    pub fn to_f32(&self) -> Vec<f32> {
        let b = self.bytes;
        match self.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            DType::I8 => b.iter().map(|&v| v as i8 as f32).collect(),
            DType::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
                .collect(),
            DType::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
        }
    }

    /// The first element as an integer (CTranslate2 stores flags and counts as scalars).
    pub fn scalar_i64(&self) -> Option<i64> {
        let b = self.bytes;
        Some(match self.dtype {
            DType::I8 => *b.first()? as i8 as i64,
            DType::I16 => i16::from_le_bytes([*b.first()?, *b.get(1)?]) as i64,
            DType::I32 => i32::from_le_bytes(b.get(..4)?.try_into().ok()?) as i64,
            _ => *self.to_f32().first()? as i64,
        })
    }
}

/// A memory-mapped CTranslate2 model file.
pub struct Ct2File {
    path: PathBuf,
    map: Mmap,
    pub version: u32,
    pub spec_name: String,
    pub spec_revision: u32,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    aliases: HashMap<String, String>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> Error {
        Error::Model {
            path: self.path.to_path_buf(),
            reason: format!(
                "{what} at byte {} (file is {} bytes); the file is truncated or corrupt — download the model again",
                self.pos,
                self.bytes.len()
            ),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.err(what))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u16(what)? as usize;
        let raw = self.take(n, what)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| self.err(&format!("{what} is not UTF-8")))
    }
}

impl Ct2File {
    /// Maps and indexes `path`. Fails with a readable error on any structural problem.
    pub fn open(path: impl AsRef<Path>) -> Result<Ct2File> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only and private to this process; model files are not
        // modified while a model is loaded (the store writes new files by rename).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::parse(path.to_path_buf(), map)
    }

    fn parse(path: PathBuf, map: Mmap) -> Result<Ct2File> {
        let mut c = Cursor {
            bytes: &map,
            pos: 0,
            path: &path,
        };
        if map.is_empty() {
            return Err(c.err("empty file"));
        }
        let version = c.u32("binary version")?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(Error::Model {
                path: path.clone(),
                reason: format!(
                    "binary version {version} is not supported (expected {}..={}); is this a CTranslate2 model.bin? \
                     Re-convert it with a recent CTranslate2 or pull it with `amanuensis models pull`",
                    SUPPORTED_VERSIONS.start(),
                    SUPPORTED_VERSIONS.end()
                ),
            });
        }
        let spec_name = c.string("spec name")?;
        let spec_revision = c.u32("spec revision")?;
        let n_vars = c.u32("variable count")? as usize;
        // Each variable takes at least 8 bytes, so a count beyond that is corruption.
        if n_vars > map.len() / 8 {
            return Err(c.err(&format!("variable count {n_vars} is impossible")));
        }
        let mut entries = Vec::with_capacity(n_vars);
        let mut index = HashMap::with_capacity(n_vars);
        for _ in 0..n_vars {
            let name = c.string("variable name")?;
            let rank = c.u8("rank")? as usize;
            if rank > MAX_RANK {
                return Err(c.err(&format!("variable {name} has rank {rank}")));
            }
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(c.u32("dimension")? as usize);
            }
            let code = c.u8("dtype")?;
            let dtype = DType::from_code(code)
                .ok_or_else(|| c.err(&format!("variable {name} has unknown dtype {code}")))?;
            let len = c.u32("byte count")? as usize;
            let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if numel.and_then(|n| n.checked_mul(dtype.size())) != Some(len) {
                return Err(c.err(&format!(
                    "variable {name}: shape {shape:?} of {} needs {:?} bytes but {len} are stored",
                    dtype.name(),
                    numel.and_then(|n| n.checked_mul(dtype.size()))
                )));
            }
            let offset = c.pos;
            c.take(len, &format!("data of {name}"))?;
            index.insert(name.clone(), entries.len());
            entries.push(Entry {
                name,
                shape,
                dtype,
                offset,
                len,
            });
        }
        let mut aliases = HashMap::new();
        // Every supported version (>= 3) writes the alias count, so a file that ends right after
        // the variables was cut short (and would silently lack its aliases).
        let n_aliases = c.u32("alias count")? as usize;
        for _ in 0..n_aliases {
            let alias = c.string("alias name")?;
            let target = c.string("alias target")?;
            if !index.contains_key(&target) {
                return Err(c.err(&format!(
                    "alias {alias} points to missing variable {target}"
                )));
            }
            aliases.insert(alias, target);
        }
        if c.pos != map.len() {
            return Err(c.err("unexpected trailing bytes"));
        }
        Ok(Ct2File {
            path,
            map,
            version,
            spec_name,
            spec_revision,
            entries,
            index,
            aliases,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks a tensor up by name, following aliases.
    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        let name = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        let e = &self.entries[*self.index.get(name)?];
        Some(TensorView {
            name: &e.name,
            shape: &e.shape,
            dtype: e.dtype,
            bytes: &self.map[e.offset..e.offset + e.len],
        })
    }

    /// Like [`get`](Self::get) but a missing tensor is an error naming the file.
    pub fn require(&self, name: &str) -> Result<TensorView<'_>> {
        self.get(name).ok_or_else(|| Error::Model {
            path: self.path.clone(),
            reason: format!(
                "tensor `{name}` is missing; this is not a complete CTranslate2 Whisper model"
            ),
        })
    }

    /// Tells the kernel the pages of `tensor` will not be read again, so converted copies do
    /// not double the resident memory while a model loads. Reading it again still works (the
    /// pages are simply faulted in from the file).
    pub fn release(&self, tensor: &TensorView<'_>) {
        let base = self.map.as_ptr() as usize;
        let start = tensor.bytes.as_ptr() as usize - base;
        // Whole pages strictly inside the tensor only, so neighbours stay resident.
        const PAGE: usize = 4096;
        let first = start.div_ceil(PAGE) * PAGE;
        let end = (start + tensor.bytes.len()) / PAGE * PAGE;
        if end > first {
            // SAFETY: the range lies inside this private read-only file mapping; after
            // MADV_DONTNEED, reads refault the same file contents, so no view is invalidated.
            let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first) };
        }
    }

    /// All stored tensors in file order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'_>> {
        self.entries.iter().map(|e| TensorView {
            name: &e.name,
            shape: &e.shape,
            dtype: e.dtype,
            bytes: &self.map[e.offset..e.offset + e.len],
        })
    }

    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases.iter().map(|(a, t)| (a.as_str(), t.as_str()))
    }
}
