//! Why this exists: `easel models inspect`, the single-file checkpoint checks and the LoRA
//! reader must know what a safetensors file holds — tensor names, dtypes, shapes and
//! metadata — without loading gigabytes of weights. This reads only the 8-byte header
//! length and the JSON header, and checks that the file is as long as the header says,
//! so a truncated download is reported (with its path) before anything is mapped.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Largest JSON header accepted: safetensors' own limit (100 MB); larger is corruption.
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Bytes of the little-endian header length that opens every safetensors file.
const LEN_BYTES: u64 = 8;

/// One tensor as the header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// safetensors' dtype name (`F32`, `F16`, `BF16`, ...).
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Byte range of the data, relative to [`Header::data_start`].
    pub data_offsets: [u64; 2],
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// The header of one safetensors file.
#[derive(Clone, Debug)]
pub struct Header {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, TensorInfo>,
    /// The free-form `__metadata__` strings (LoRA trainers store settings there).
    pub metadata: BTreeMap<String, String>,
    /// File size in bytes.
    pub file_len: u64,
    /// Offset of the tensor data in the file (just after the header).
    pub data_start: u64,
    /// Bytes of tensor data the header describes.
    data_len: u64,
}

#[derive(serde::Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

impl Header {
    /// Reads the header of `path`: only the first bytes of the file are read.
    pub fn read(path: &Path) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(|e| open_error(path, e))?;
        let file_len = file
            .metadata()
            .map_err(|source| Error::Io {
                path: path.into(),
                source,
            })?
            .len();
        let mut len = [0u8; LEN_BYTES as usize];
        file.read_exact(&mut len)
            .map_err(|_| not_safetensors(path, "shorter than a safetensors header"))?;
        if let Some(what) = pickle_kind(&len) {
            return Err(bad(path, format!("this is {what}, not safetensors; Easel reads safetensors only: convert it (e.g. with diffusers or the `safetensors` Python package)")));
        }
        let n = u64::from_le_bytes(len);
        if n > MAX_HEADER_BYTES || n + LEN_BYTES > file_len {
            return Err(not_safetensors(path, "its header length is impossible for this file"));
        }
        let mut json = vec![0u8; n as usize];
        file.read_exact(&mut json).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        let mut header = parse(path, &json, file_len)?;
        header.data_start = LEN_BYTES + n;
        header.check_length(header.data_start)?;
        Ok(header)
    }

    /// Total number of elements of all tensors.
    pub fn params(&self) -> u64 {
        self.tensors.values().map(TensorInfo::numel).sum()
    }

    /// Elements per dtype.
    pub fn params_by_dtype(&self) -> BTreeMap<String, u64> {
        let mut by = BTreeMap::new();
        for t in self.tensors.values() {
            *by.entry(t.dtype.clone()).or_insert(0) += t.numel();
        }
        by
    }

    /// The shape of `key`, when present.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|t| t.shape.as_slice())
    }

    /// Whether any tensor name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.tensors
            .range(prefix.to_string()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(prefix))
    }

    /// Tensor names that start with `prefix`.
    pub fn keys_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tensors
            .range(prefix.to_string()..)
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(prefix))
    }

    /// Fails when the file is shorter than the tensors the header lists.
    fn check_length(&self, data_start: u64) -> Result<()> {
        let need = data_start + self.data_len;
        if self.file_len < need {
            return Err(bad(
                &self.path,
                format!(
                    "the file is truncated: its header describes {need} bytes but it holds {}; download it again",
                    self.file_len
                ),
            ));
        }
        Ok(())
    }
}

fn parse(path: &Path, json: &[u8], file_len: u64) -> Result<Header> {
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| not_safetensors(path, &format!("its header is not JSON ({e})")))?;
    let mut header = Header {
        path: path.into(),
        tensors: BTreeMap::new(),
        metadata: BTreeMap::new(),
        file_len,
        data_start: 0,
        data_len: 0,
    };
    for (name, value) in raw {
        if name == "__metadata__" {
            // Trainers sometimes store non-string values; they are ignored, not fatal.
            header.metadata = serde_json::from_value(value).unwrap_or_default();
            continue;
        }
        let info: RawInfo = serde_json::from_value(value)
            .map_err(|e| not_safetensors(path, &format!("tensor {name} has a malformed entry ({e})")))?;
        header.data_len = header.data_len.max(info.data_offsets[1]);
        header.tensors.insert(
            name,
            TensorInfo {
                dtype: info.dtype,
                shape: info.shape,
                data_offsets: info.data_offsets,
            },
        );
    }
    Ok(header)
}

/// Pickled PyTorch files (`.ckpt`, `.bin`, `.pt`) start with a zip or pickle signature.
fn pickle_kind(first: &[u8; LEN_BYTES as usize]) -> Option<&'static str> {
    match first {
        [b'P', b'K', 3, 4, ..] => Some("a PyTorch zip checkpoint (.ckpt/.pt/.bin)"),
        [0x80, 2..=5, ..] => Some("a pickled PyTorch file (.ckpt/.pt/.bin)"),
        _ => None,
    }
}

fn open_error(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::MissingFile {
            path: path.into(),
            hint: "no such file: check the path".into(),
        }
    } else {
        Error::Io {
            path: path.into(),
            source: e,
        }
    }
}

fn not_safetensors(path: &Path, why: &str) -> Error {
    bad(
        path,
        format!("not a safetensors file: {why}; the file is truncated or of another format"),
    )
}

fn bad(path: &Path, msg: String) -> Error {
    Error::Weights { path: path.into(), msg }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn file(json: &str, data: usize) -> Vec<u8> {
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data));
        v
    }

    const TWO: &str = r#"{"__metadata__":{"a":"b"},"x.w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"y":{"dtype":"F32","shape":[4],"data_offsets":[12,28]}}"#;

    #[test]
    fn reads_names_dtypes_shapes_and_metadata_without_the_data() {
        let f = write(&file(TWO, 28));
        let h = Header::read(f.path()).unwrap();
        assert_eq!(h.shape("x.w"), Some(&[2usize, 3][..]));
        assert_eq!(h.params(), 10);
        assert_eq!(h.params_by_dtype()["F16"], 6);
        assert_eq!(h.metadata["a"], "b");
        assert!(h.has_prefix("x.") && !h.has_prefix("z"));
        assert_eq!(h.keys_with_prefix("x").collect::<Vec<_>>(), ["x.w"]);
    }

    #[test]
    fn a_truncated_file_is_reported_as_truncated() {
        let f = write(&file(TWO, 20));
        let msg = Header::read(f.path()).unwrap_err().to_string();
        assert!(msg.contains("truncated") && msg.contains("download it again"), "{msg}");
    }

    #[test]
    fn pickles_and_garbage_are_named() {
        let f = write(b"PK\x03\x04 rest of a zip file");
        assert!(Header::read(f.path())
            .unwrap_err()
            .to_string()
            .contains("PyTorch zip checkpoint"));
        let f = write(b"hello, this is not safetensors at all");
        assert!(Header::read(f.path())
            .unwrap_err()
            .to_string()
            .contains("not a safetensors file"));
        let e = Header::read(Path::new("/nonexistent/x.safetensors")).unwrap_err();
        assert!(matches!(e, Error::MissingFile { .. }));
    }
}
