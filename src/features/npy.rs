//! Minimal `.npy` (version 1.0) reading and writing for 2-D little-endian f32/f16 matrices, the
//! format NumPy users load with `np.load`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// Storage precision of a feature matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    F16,
}

/// Encodes `[rows, cols]` values as an .npy file's bytes.
pub fn encode(data: &[f32], rows: usize, cols: usize, dtype: Dtype) -> Vec<u8> {
    let descr = match dtype {
        Dtype::F32 => "<f4",
        Dtype::F16 => "<f2",
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Pad so that data starts at a multiple of 64 bytes, header ending in '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match dtype {
        Dtype::F32 => data.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Dtype::F16 => data.iter().for_each(|x| out.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes())),
    }
    out
}

/// Writes an .npy file atomically.
pub fn write(path: &Path, data: &[f32], rows: usize, cols: usize, dtype: Dtype) -> Result<()> {
    write_atomic(path, &encode(data, rows, cols, dtype))
}

/// Reads a 2-D f32/f16 .npy file: `(data, rows, cols)`.
pub fn read(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::format(path, format!("not a 2-D f32/f16 .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("magic"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Err(bad("version")),
    };
    let header =
        std::str::from_utf8(bytes.get(start..start + hlen).ok_or_else(|| bad("header"))?).map_err(|_| bad("header"))?;
    if header.contains("'fortran_order': True") {
        return Err(bad("fortran order"));
    }
    let width = if header.contains("'<f4'") {
        4
    } else if header.contains("'<f2'") {
        2
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
    let body = &bytes[start + hlen..];
    if body.len() != rows * cols * width {
        return Err(bad("size"));
    }
    let data = if width == 4 {
        body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        body.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
    };
    Ok((data, rows, cols))
}
