//! The tiles' matrix products through `gemm`, on the calling thread, behind bounds-checked views.

/// A `rows × cols` matrix inside a slice: element (i, j) at `at + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    data: &'a [f32],
    at: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `rows` contiguous rows of `cols` floats from `at`.
    pub fn rows(data: &'a [f32], at: usize, rows: usize, cols: usize) -> Self {
        View { data, at, rows, cols, rs: cols, cs: 1 }
    }

    /// A `rows × cols` matrix whose element (i, j) is `data[i·rs + j·cs]`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        View { data, at: 0, rows, cols, rs, cs }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        View { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    fn ptr(&self) -> *const f32 {
        let last = self.at + (self.rows.max(1) - 1) * self.rs + (self.cols.max(1) - 1) * self.cs;
        assert!(self.rows == 0 || self.cols == 0 || last < self.data.len(), "a view past its slice");
        self.data[self.at..].as_ptr()
    }
}

/// `dst = scale·a·b`, or `dst += scale·a·b` with `accumulate`; `dst` holds `a.rows × b.cols`
/// contiguous rows.
pub(crate) fn product(dst: &mut [f32], accumulate: bool, a: View<'_>, b: View<'_>, scale: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions");
    assert!(dst.len() >= m * n, "destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let (ap, bp) = (a.ptr(), b.ptr());
    // SAFETY: every element gemm reads lies in `a`'s or `b`'s slice (checked by `ptr`), every
    // element it writes in `dst[..m·n]` (checked above); `dst` is borrowed mutably, so it
    // aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            ap,
            a.cs as isize,
            a.rs as isize,
            bp,
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
