//! `.npy` matrices, the format NumPy users load with `np.load`: features are written as 2-D
//! little-endian f32 or f16 a block of rows at a time; any float .npy (f16, f32 or NumPy's
//! default f64) is read, a range of rows at a time. npyz reads and writes the headers.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// Storage precision of a feature matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    F16,
}

crate::choice::choice!(Dtype {
    F32 => "f32": "32-bit floats",
    F16 => "f16": "16-bit floats (half the disk and memory)",
});

/// The header of an .npy file holding `[rows, cols]` values of `dtype` (written by npyz, which
/// pads it so the data starts on an aligned offset).
fn header(rows: usize, cols: usize, dtype: Dtype) -> Vec<u8> {
    use npyz::WriterBuilder;
    let descr = match dtype {
        Dtype::F32 => "<f4",
        Dtype::F16 => "<f2",
    };
    let mut out = Vec::new();
    npyz::WriteOptions::new_header_only()
        .dtype(npyz::DType::Plain(descr.parse().expect("a valid type string")))
        .shape(&[rows as u64, cols as u64])
        .writer(&mut out)
        .write_header_only()
        .expect("writing to memory");
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
pub(crate) fn encode(data: &[f32], rows: usize, cols: usize, dtype: Dtype) -> Vec<u8> {
    let mut out = header(rows, cols, dtype);
    encode_values(data, dtype, &mut out);
    out
}

/// Writes an .npy file atomically.
pub fn write(path: &Path, data: &[f32], rows: usize, cols: usize, dtype: Dtype) -> Result<()> {
    write_atomic(path, &encode(data, rows, cols, dtype))
}

/// Reads a 2-D (or 1-D) float .npy file as f32: `(data, rows, cols)`.
pub fn read(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let f = NpyFile::open(path)?;
    Ok((f.read_rows(0, f.rows)?, f.rows, f.cols))
}

/// How the values of a file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    /// Bytes per value: 2 (f16), 4 (f32) or 8 (f64, NumPy's default).
    pub width: usize,
    pub big_endian: bool,
}

impl Encoding {
    /// Decodes values of this encoding to f32.
    fn decode(self, b: &[u8]) -> Vec<f32> {
        let (w, be) = (self.width, self.big_endian);
        match w {
            2 => b
                .chunks_exact(2)
                .map(|c| {
                    let bits = if be { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) };
                    half::f16::from_bits(bits).to_f32()
                })
                .collect(),
            4 => b
                .chunks_exact(4)
                .map(|c| {
                    let a = [c[0], c[1], c[2], c[3]];
                    if be {
                        f32::from_be_bytes(a)
                    } else {
                        f32::from_le_bytes(a)
                    }
                })
                .collect(),
            _ => b
                .chunks_exact(8)
                .map(|c| {
                    let a: [u8; 8] = c.try_into().expect("8 bytes");
                    (if be { f64::from_be_bytes(a) } else { f64::from_le_bytes(a) }) as f32
                })
                .collect(),
        }
    }
}

/// An open 2-D float .npy file (f16, f32 or f64, either byte order) whose rows are read a
/// range at a time, so a matrix larger than memory can be streamed. The header is parsed by
/// npyz.
#[derive(Debug, Clone)]
pub struct NpyFile {
    path: PathBuf,
    pub rows: usize,
    pub cols: usize,
    pub encoding: Encoding,
    /// Byte offset of the first value.
    start: u64,
}

impl NpyFile {
    /// Parses the header and checks the file's size against it.
    pub fn open(path: &Path) -> Result<NpyFile> {
        let bad = |m: String| Error::format(path, format!("not a 2-D float .npy file: {m}"));
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let npy = npyz::NpyFile::new(&mut f).map_err(|e| bad(e.to_string()))?;
        if npy.order() == npyz::Order::Fortran && npy.shape().len() > 1 {
            return Err(bad("Fortran order".into()));
        }
        let encoding = match npy.dtype() {
            npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && [2, 4, 8].contains(&t.size_field()) => {
                Encoding { width: t.size_field() as usize, big_endian: t.endianness() == npyz::Endianness::Big }
            }
            other => return Err(bad(format!("dtype {}, expected float16, float32 or float64", other.descr()))),
        };
        let (rows, cols) = match npy.shape() {
            [r, c] => (*r as usize, *c as usize),
            [r] => (*r as usize, 1),
            other => return Err(bad(format!("shape {other:?}"))),
        };
        let start = f.stream_position().map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        if len != start + (rows * cols * encoding.width) as u64 {
            return Err(bad(format!(
                "{len} bytes, the header promises {}",
                start + (rows * cols * encoding.width) as u64
            )));
        }
        Ok(NpyFile { path: path.to_path_buf(), rows, cols, encoding, start })
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
        let w = self.encoding.width;
        let mut bytes = vec![0u8; n * self.cols * w];
        let mut f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        f.seek(SeekFrom::Start(self.start + (r0 * self.cols * w) as u64)).map_err(|e| Error::io(&self.path, e))?;
        f.read_exact(&mut bytes).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.encoding.decode(&bytes))
    }
}

/// Bytes per value written.
fn width(dtype: Dtype) -> usize {
    match dtype {
        Dtype::F32 => 4,
        Dtype::F16 => 2,
    }
}

/// Writes a `[rows, cols]` .npy file a block of rows at a time, into a temporary file that
/// [`NpyWriter::finish`] renames into place: a reader never sees a partial matrix.
pub(crate) struct NpyWriter {
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
            return Err(Error::Internal(format!("{}: a block that does not fit the matrix", self.path.display())));
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
            return Err(Error::Internal(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A path `m.npy` in a fresh directory, removed when the directory drops.
    fn tmp(name: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::Builder::new().prefix(&format!("gradsift-npy-{name}-")).tempdir().unwrap();
        let p = d.path().join("m.npy");
        (d, p)
    }

    /// A file as NumPy writes it: a version-1.0 header padded to 64 bytes, then the values.
    fn numpy_file(descr: &str, shape: &str, values: &[u8]) -> Vec<u8> {
        numpy_file_in(descr, "False", shape, values)
    }

    fn numpy_file_in(descr: &str, fortran: &str, shape: &str, values: &[u8]) -> Vec<u8> {
        let mut text = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
        while (10 + text.len() + 1) % 64 != 0 {
            text.push(' ');
        }
        text.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(values);
        out
    }

    #[test]
    fn float64_and_big_endian_files_are_read() {
        let (_dir, p) = tmp("f64");
        let vals = [1.5f64, -2.25, 3.0, 0.125, 7.0, -0.5];
        let le: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&p, numpy_file("<f8", "(3, 2)", &le)).unwrap();
        let (data, r, c) = read(&p).unwrap();
        assert_eq!((r, c), (3, 2));
        assert_eq!(data, vals.iter().map(|&v| v as f32).collect::<Vec<_>>());
        let be: Vec<u8> = vals.iter().flat_map(|v| (*v as f32).to_be_bytes()).collect();
        std::fs::write(&p, numpy_file(">f4", "(6,)", &be)).unwrap();
        let f = NpyFile::open(&p).unwrap();
        assert_eq!((f.rows, f.cols), (6, 1));
        assert_eq!(f.read_rows(2, 3).unwrap(), [3.0, 0.125, 7.0]);
    }

    #[test]
    fn written_matrices_read_back_in_both_dtypes() {
        let (_dir, p) = tmp("rw");
        let vals: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        for dtype in [Dtype::F32, Dtype::F16] {
            write(&p, &vals, 4, 3, dtype).unwrap();
            assert_eq!(read(&p).unwrap(), (vals.clone(), 4, 3), "{dtype:?}");
        }
    }

    #[test]
    fn integer_truncated_and_fortran_files_are_refused() {
        let (_dir, p) = tmp("bad");
        std::fs::write(&p, numpy_file("<i4", "(2, 2)", &[0u8; 16])).unwrap();
        assert!(NpyFile::open(&p).unwrap_err().to_string().contains("dtype"));
        std::fs::write(&p, numpy_file("<f4", "(2, 2)", &[0u8; 12])).unwrap();
        assert!(NpyFile::open(&p).unwrap_err().to_string().contains("bytes"));
        std::fs::write(&p, numpy_file_in("<f4", "True", "(2, 2)", &[0u8; 16])).unwrap();
        assert!(NpyFile::open(&p).unwrap_err().to_string().contains("Fortran"));
    }
}
