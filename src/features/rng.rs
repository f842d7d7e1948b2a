//! The counter-based generator behind the random projection. The sign of entry (row, col) of P
//! is a pure function of (seed, row, col), computed with 32-bit integer operations that WGSL
//! has too, so the shader and this code produce the same matrix bit for bit on every device,
//! with no matrix stored anywhere. shaders/project.wgsl carries the same three functions.

/// MurmurHash3's 32-bit finalizer: a bijection with full avalanche.
#[inline]
pub(crate) fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// The key of one row of P (hoisted out of the column loop).
#[inline]
pub(crate) fn row_key(seed: u64, row: u32) -> u32 {
    let s = fmix32(fmix32(seed as u32 ^ 0x5EED_0001) ^ (seed >> 32) as u32);
    fmix32(s ^ row.wrapping_mul(0x9E37_79B9).wrapping_add(0x7F4A_7C15))
}

/// True when P[row, col] is negative.
#[inline]
pub(crate) fn negative(row_key: u32, col: u32) -> bool {
    fmix32(row_key ^ fmix32(col.wrapping_mul(0x27D4_EB2F).wrapping_add(0x1656_67B1))) & 0x8000_0000 != 0
}

/// P[row, col] before the 1/√k scale: ±1.
pub fn rademacher(seed: u64, row: u32, col: u32) -> f32 {
    if negative(row_key(seed, row), col) {
        -1.0
    } else {
        1.0
    }
}

/// The key of the sparse projection's column slots (hoisted out of the column loop).
#[inline]
pub(crate) fn sparse_key(seed: u64) -> u32 {
    fmix32(fmix32(seed as u32 ^ 0x5EED_0002) ^ (seed >> 32) as u32)
}

/// The hash of column `col`'s nonzero in block `block` of the sparse projection: its low 31
/// bits pick the row inside the block, its top bit the sign.
#[inline]
pub(crate) fn sparse_slot(key: u32, col: u32, block: u32) -> u32 {
    fmix32(fmix32(key ^ col.wrapping_mul(0x27D4_EB2F).wrapping_add(0x1656_67B1)) ^ block.wrapping_mul(0x85EB_CA77))
}
