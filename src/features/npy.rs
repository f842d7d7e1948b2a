//! Minimal `.npy` (version 1.0) reading and writing for 2-D little-endian f32/f16 matrices, the
//! format NumPy users load with `np.load`.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// Storage precision of a feature matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    F16,
}

/// The header of an .npy file holding `[rows, cols]` values of `dtype`, padded so that the data
/// starts at a multiple of 64 bytes.
fn header(rows: usize, cols: usize, dtype: Dtype) -> Vec<u8> {
    let descr = match dtype {
        Dtype::F32 => "<f4",
        Dtype::F16 => "<f2",
    };
    let mut text = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + text.len() + 1) % 64 != 0 {
        text.push(' ');
    }
    text.push('\n');
    let mut out = Vec::with_capacity(10 + text.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Appends `data` to `out` in `dtype`'s little-endian encoding.
fn encode_values(data: &[f32], dtype: Dtype, out: &mut Vec<u8>) {
    match dtype {
        Dtype::F32 => data.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Dtype::F16 => data.iter().for_each(|x| out.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes())),
    }
}

/// Encodes `[rows, cols]` values as an .npy file's bytes.
pub fn encode(data: &[f32], rows: usize, cols: usize, dtype: Dtype) -> Vec<u8> {
    let mut out = header(rows, cols, dtype);
    encode_values(data, dtype, &mut out);
    out
}

/// Writes an .npy file atomically.
pub fn write(path: &Path, data: &[f32], rows: usize, cols: usize, dtype: Dtype) -> Result<()> {
    write_atomic(path, &encode(data, rows, cols, dtype))
}

/// Reads a 2-D f32/f16 .npy file: `(data, rows, cols)`.
pub fn read(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let f = NpyFile::open(path)?;
    Ok((f.read_rows(0, f.rows)?, f.rows, f.cols))
}

/// An open 2-D f32/f16 .npy file whose rows are read a range at a time, so a matrix larger
/// than memory can be streamed.
#[derive(Debug, Clone)]
pub struct NpyFile {
    path: PathBuf,
    pub rows: usize,
    pub cols: usize,
    pub dtype: Dtype,
    /// Byte offset of the first value.
    start: u64,
}

impl NpyFile {
    /// Parses the header and checks the file's size against it.
    pub fn open(path: &Path) -> Result<NpyFile> {
        let bad = |m: &str| Error::format(path, format!("not a 2-D f32/f16 .npy file: {m}"));
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut pre = [0u8; 12];
        let got = read_up_to(&mut f, &mut pre).map_err(|e| Error::io(path, e))?;
        if got < 10 || &pre[..6] != b"\x93NUMPY" {
            return Err(bad("magic"));
        }
        let (hlen, start) = match pre[6] {
            1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
            2 | 3 if got == 12 => (u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize, 12),
            _ => return Err(bad("version")),
        };
        let mut text = vec![0u8; hlen];
        f.seek(SeekFrom::Start(start as u64)).map_err(|e| Error::io(path, e))?;
        f.read_exact(&mut text).map_err(|_| bad("header"))?;
        let header = std::str::from_utf8(&text).map_err(|_| bad("header"))?;
        if header.contains("'fortran_order': True") {
            return Err(bad("fortran order"));
        }
        let dtype = if header.contains("'<f4'") {
            Dtype::F32
        } else if header.contains("'<f2'") {
            Dtype::F16
        } else {
            return Err(bad("dtype"));
        };
        let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("shape"))?;
        let dims: Vec<usize> = shape.split(',').filter_map(|d| d.trim().parse().ok()).collect();
        let (rows, cols) = match dims.as_slice() {
            [r, c] => (*r, *c),
            [r] => (*r, 1),
            _ => return Err(bad("rank")),
        };
        let start = (start + hlen) as u64;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        if len != start + (rows * cols * width(dtype)) as u64 {
            return Err(bad("size"));
        }
        Ok(NpyFile { path: path.to_path_buf(), rows, cols, dtype, start })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows `r0 .. r0 + n`, row-major, as f32.
    pub fn read_rows(&self, r0: usize, n: usize) -> Result<Vec<f32>> {
        if r0 + n > self.rows {
            return Err(Error::format(&self.path, format!("rows {r0}..{} past the end ({})", r0 + n, self.rows)));
        }
        let w = width(self.dtype);
        let mut bytes = vec![0u8; n * self.cols * w];
        let mut f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        f.seek(SeekFrom::Start(self.start + (r0 * self.cols * w) as u64)).map_err(|e| Error::io(&self.path, e))?;
        f.read_exact(&mut bytes).map_err(|e| Error::io(&self.path, e))?;
        Ok(match self.dtype {
            Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        })
    }
}

/// Bytes per value.
fn width(dtype: Dtype) -> usize {
    match dtype {
        Dtype::F32 => 4,
        Dtype::F16 => 2,
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Writes a `[rows, cols]` .npy file a block of rows at a time, into a temporary file that
/// [`NpyWriter::finish`] renames into place: a reader never sees a partial matrix.
pub struct NpyWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    rows: usize,
    cols: usize,
    dtype: Dtype,
    written: usize,
}

impl NpyWriter {
    pub fn create(path: &Path, rows: usize, cols: usize, dtype: Dtype) -> Result<NpyWriter> {
        let tmp = crate::util::tmp_path(path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header(rows, cols, dtype)).map_err(|e| Error::io(&tmp, e))?;
        Ok(NpyWriter { path: path.to_path_buf(), tmp, out, rows, cols, dtype, written: 0 })
    }

    /// Appends whole rows.
    pub fn append(&mut self, data: &[f32]) -> Result<()> {
        let n = data.len() / self.cols.max(1);
        if n * self.cols != data.len() || self.written + n > self.rows {
            return Err(Error::Invalid(format!("{}: a block that does not fit the matrix", self.path.display())));
        }
        let mut bytes = Vec::with_capacity(data.len() * width(self.dtype));
        encode_values(data, self.dtype, &mut bytes);
        self.out.write_all(&bytes).map_err(|e| Error::io(&self.tmp, e))?;
        self.written += n;
        Ok(())
    }

    /// Checks that every row was written and moves the file into place.
    pub fn finish(self) -> Result<()> {
        if self.written != self.rows {
            return Err(Error::Invalid(format!(
                "{}: {} of {} rows written",
                self.path.display(),
                self.written,
                self.rows
            )));
        }
        let file = self.out.into_inner().map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}
