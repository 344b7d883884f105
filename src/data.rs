//! MNIST-shaped IDX data: gzipped IDX files read with `flate2`, pixels kept as `u8`.
//!
//! Pixels stay `u8` in memory (a 50,000 x 784 f32 copy would not fit one GPU storage
//! binding on many devices); they are normalized where used, with [`normalize`].

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Number of classes; labels must be below this.
pub const CLASSES: usize = 10;
/// No real IDX file of this kind is larger: a cap so a lying gzip cannot exhaust memory.
const MAX_DECOMPRESSED: u64 = 1 << 30;
/// Largest gzip file read (compressed).
const MAX_COMPRESSED: u64 = 1 << 30;

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte.gz";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid gzip file or truncated: {source}")]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("{images} has {n_images} images but {labels} has {n_labels} labels")]
    CountMismatch {
        images: PathBuf,
        labels: PathBuf,
        n_images: usize,
        n_labels: usize,
    },
    #[error("data directory {0} does not exist (expected the four MNIST .gz files there; see data/mnist/README.md)")]
    MissingDir(PathBuf),
    #[error(
        "data directory {0} is not a directory (expected a folder with the four MNIST .gz files)"
    )]
    NotDir(PathBuf),
}

/// Images (row-major, `rows*cols` bytes each) with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Pixels per image (784 for MNIST).
    pub fn features(&self) -> usize {
        self.rows * self.cols
    }
    /// A copy of `len` consecutive samples starting at `start`.
    pub fn slice(&self, start: usize, len: usize) -> Dataset {
        let f = self.features();
        Dataset {
            images: self.images[start * f..(start + len) * f].to_vec(),
            labels: self.labels[start..start + len].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }
    /// One image, as bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let f = self.features();
        &self.images[i * f..(i + 1) * f]
    }
}

/// Pixel normalization exactly as torchvision's `ToTensor()` then `Normalize(0.5, 0.5)`:
/// `(p/255 - 0.5) / 0.5`, each operation rounded in f32. Maps [0, 255] onto [-1, 1].
pub fn normalize(p: u8) -> f32 {
    (p as f32 / 255.0 - 0.5) / 0.5
}

/// The 256 values of [`normalize`], so hot loops (and GPU kernels) can look them up.
pub fn normalize_table() -> [f32; 256] {
    std::array::from_fn(|p| normalize(p as u8))
}

/// Decompresses a whole gzip file (every member: `cat a.gz b.gz` is valid gzip and `zcat`
/// reads it), allocating only what the IDX header it starts with claims, capped at
/// [`MAX_DECOMPRESSED`]; [`parse_idx`] then checks the claim against the payload.
fn read_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let fmt = |msg: String| DataError::Format {
        path: path.to_owned(),
        msg,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(fmt("not a regular file".into()));
    }
    if meta.len() > MAX_COMPRESSED {
        return Err(fmt(format!(
            "{} bytes, more than the {MAX_COMPRESSED} a data file may have",
            meta.len()
        )));
    }
    let file = File::open(path).map_err(io)?;
    let gz_err = |source| DataError::Gzip {
        path: path.to_owned(),
        source,
    };
    let mut reader = MultiGzDecoder::new(file).take(MAX_DECOMPRESSED + 1);
    // The header first: its dimensions say how much to reserve.
    let mut out = Vec::new();
    // Bytes past what the header claims are not read (a lying file is refused by size).
    let mut allowed = MAX_DECOMPRESSED + 1;
    (&mut reader)
        .take(4)
        .read_to_end(&mut out)
        .map_err(gz_err)?;
    if out.len() == 4 {
        let ndims = (be_u32(&out, 0) & 0xff).min(4) as u64;
        (&mut reader)
            .take(4 * ndims)
            .read_to_end(&mut out)
            .map_err(gz_err)?;
        let claimed = out[4..]
            .chunks_exact(4)
            .try_fold(1u64, |acc, c| {
                acc.checked_mul(u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
            })
            .unwrap_or(u64::MAX);
        // Data that cannot fit beside the run is refused here, not by an abort.
        let limit = crate::limits::memory_limit() as u128;
        if claimed <= MAX_DECOMPRESSED && claimed as u128 + (256 << 20) > limit {
            return Err(fmt(format!(
                "its header claims {claimed} bytes of data, more than fits in the {} MiB this process may use (with room for the run)",
                limit >> 20
            )));
        }
        if claimed <= MAX_DECOMPRESSED && out.try_reserve_exact(claimed as usize + 1).is_err() {
            return Err(fmt(format!("{claimed} bytes of data do not fit in memory")));
        }
        allowed = allowed.min(claimed.saturating_add(1));
    }
    read_rest(reader, out, allowed, path)
}

/// The rest of [`read_gz`]: at most `allowed` bytes past the header in `out`, refused by
/// size when there are more.
fn read_rest(
    mut reader: impl Read,
    mut out: Vec<u8>,
    allowed: u64,
    path: &Path,
) -> Result<Vec<u8>, DataError> {
    let fmt = |msg: String| DataError::Format {
        path: path.to_owned(),
        msg,
    };
    let gz_err = |source| DataError::Gzip {
        path: path.to_owned(),
        source,
    };
    (&mut reader).take(allowed).read_to_end(&mut out).map_err(|e| {
        // Growing the buffer failed: memory ran out, the file is not to blame.
        if e.kind() == std::io::ErrorKind::OutOfMemory {
            fmt("the data does not fit in memory (it decompresses to more than this process may use)".into())
        } else {
            gz_err(e)
        }
    })?;
    let header = out
        .len()
        .min(4 + 4 * (out.get(3).map_or(0, |d| *d as usize).min(4))) as u64;
    if allowed <= MAX_DECOMPRESSED && out.len() as u64 > header + allowed - 1 {
        return Err(fmt(format!(
            "holds more data than the {} bytes its header claims (a size limit: the rest is not read)",
            allowed - 1
        )));
    }
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(fmt(format!(
            "decompresses to more than {MAX_DECOMPRESSED} bytes"
        )));
    }
    Ok(out)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses the bytes of an IDX file: checks the magic, then that the dimensions the header
/// claims match the payload size exactly (so a lying header never drives an allocation).
/// Returns the dimensions and the payload.
pub fn parse_idx<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let fmt = |msg: String| DataError::Format {
        path: path.to_owned(),
        msg,
    };
    if bytes.len() < 4 {
        return Err(fmt(format!(
            "too short for an IDX header ({} bytes)",
            bytes.len()
        )));
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(fmt(format!(
            "wrong IDX magic number {found} (0x{found:08x}), expected {magic} (0x{magic:08x})"
        )));
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(fmt(format!(
            "truncated IDX header: {} bytes, expected at least {header}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| be_u32(bytes, 4 + 4 * d) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| fmt(format!("dimensions {dims:?} overflow")))?;
    let payload = &bytes[header..];
    if payload.len() != expected {
        return Err(fmt(format!(
            "header claims dimensions {dims:?} ({expected} bytes of data) but the file holds {} bytes",
            payload.len()
        )));
    }
    Ok((dims, payload))
}

/// Reads a gzipped IDX images file and its labels file into a [`Dataset`].
pub fn load_pair(images_path: &Path, labels_path: &Path) -> Result<Dataset, DataError> {
    let raw = read_gz(images_path)?;
    let (dims, pixels) = parse_idx(images_path, &raw, IMAGES_MAGIC)?;
    let (n_images, rows, cols) = (dims[0], dims[1], dims[2]);
    if n_images == 0 {
        return Err(DataError::Format {
            path: images_path.to_owned(),
            msg: "holds no images".into(),
        });
    }
    if rows == 0 || cols == 0 {
        return Err(DataError::Format {
            path: images_path.to_owned(),
            msg: format!("images of size {rows}x{cols}"),
        });
    }
    let images = pixels.to_vec();
    drop(raw);

    let raw = read_gz(labels_path)?;
    let (dims, labels) = parse_idx(labels_path, &raw, LABELS_MAGIC)?;
    if dims[0] != n_images {
        return Err(DataError::CountMismatch {
            images: images_path.to_owned(),
            labels: labels_path.to_owned(),
            n_images,
            n_labels: dims[0],
        });
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= CLASSES) {
        return Err(DataError::Format {
            path: labels_path.to_owned(),
            msg: format!(
                "label {} at index {i} is not a class 0..{}",
                labels[i],
                CLASSES - 1
            ),
        });
    }
    Ok(Dataset {
        images,
        labels: labels.to_vec(),
        rows,
        cols,
    })
}

/// Which part of an MNIST-shaped folder to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The 60,000 learning images (train + eval).
    Learn,
    /// The 10,000 test images.
    Test,
}

/// Loads one part of an MNIST-shaped folder (MNIST, Fashion-MNIST, ...).
pub fn load(dir: &Path, part: Part) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        // "does not exist" only when it does not.
        return Err(if dir.exists() {
            DataError::NotDir(dir.to_owned())
        } else {
            DataError::MissingDir(dir.to_owned())
        });
    }
    let (i, l) = match part {
        Part::Learn => (TRAIN_IMAGES, TRAIN_LABELS),
        Part::Test => (TEST_IMAGES, TEST_LABELS),
    };
    load_pair(&dir.join(i), &dir.join(l))
}

/// Whether a learning set is MNIST itself (by its first labels), so results can be set
/// beside the report's MNIST numbers and not, say, beside Fashion-MNIST's.
pub fn is_mnist(learn: &Dataset) -> bool {
    const FIRST: [u8; 20] = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9];
    learn.len() == 60_000 && learn.labels.starts_with(&FIRST)
}

/// The report's holdout split: the first `train` learning samples train, the next `eval`
/// evaluate. Deterministic, so every backend and run sees the same sets.
pub fn split(learn: &Dataset, train: usize, eval: usize) -> Result<(Dataset, Dataset), String> {
    if train + eval > learn.len() {
        return Err(format!(
            "train_set_size + eval_set_size = {} exceeds the {} learning images",
            train + eval,
            learn.len()
        ));
    }
    Ok((learn.slice(0, train), learn.slice(train, eval)))
}
