//! Frozen weight matrices in parts that a GPU can bind. WebGPU binds a storage buffer of at
//! most the device's `max_storage_buffer_binding_size` (2 GiB − 1 in wgpu on Vulkan and DX12,
//! 128 MiB by WebGPU's default in a browser), and CubeCL allocates no tensor larger than that:
//! Llama-3's f32 embedding alone is 2.1 GB. A [`Matrix`] past the device's limit
//! ([`crate::device::binding_limit`]) is kept as parts cut along one axis, and each operation
//! a model needs of its frozen weights (the product `x·W`, rows or columns looked up, the
//! transpose a tied head is) runs part by part. Cutting along the output axis leaves every
//! dot product whole, so the product is the unsplit one's; a lookup takes each row from the
//! one part that holds it.

use burn::prelude::*;

use super::half;
use super::weights::HostTensor;

/// A frozen matrix on the device, whole or in parts along one axis.
#[derive(Clone)]
pub struct Matrix {
    parts: Vec<Tensor<2>>,
    /// The axis the parts are cut along: 0 (rows) or 1 (columns).
    axis: usize,
    /// Part `p` holds indices `bounds[p]..bounds[p + 1]` along `axis`.
    bounds: Vec<usize>,
}

impl Matrix {
    /// A matrix held in one tensor (f32 or 16 bits; a gradient leaf when training).
    pub fn whole(t: Tensor<2>) -> Matrix {
        let rows = t.dims()[0];
        Matrix { parts: vec![t], axis: 0, bounds: vec![0, rows] }
    }

    /// Uploads f32 `t: [rows, cols]` to `device` in parts cut along `axis` (0 or 1), each
    /// within `limit` bytes (one part when the whole fits, or with no limit).
    pub fn from_host(t: HostTensor, axis: usize, limit: Option<usize>, device: &Device) -> Matrix {
        assert!(axis < 2, "a matrix has axes 0 and 1");
        Matrix::upload_in_parts(t, axis, 4, limit, |part| part.upload(device))
    }

    /// Uploads `t: [rows, cols]` through `upload` in parts cut along `axis`, each within
    /// `limit` bytes at `bytes_per_value` (one part when the whole fits, or with no limit).
    pub(crate) fn upload_in_parts(
        t: HostTensor,
        axis: usize,
        bytes_per_value: usize,
        limit: Option<usize>,
        mut upload: impl FnMut(HostTensor) -> Tensor<2>,
    ) -> Matrix {
        let [rows, cols] = t.shape[..] else { unreachable!("a matrix has two dimensions") };
        let (along, across) = if axis == 0 { (rows, cols) } else { (cols, rows) };
        let per = part_length(along, across * bytes_per_value, limit);
        if per >= along {
            return Matrix::whole(upload(t));
        }
        let bounds: Vec<usize> = (0..along).step_by(per).chain([along]).collect();
        let parts = bounds
            .windows(2)
            .map(|w| {
                let data = match axis {
                    0 => t.data[w[0] * cols..w[1] * cols].to_vec(),
                    _ => t.data.chunks_exact(cols).flat_map(|row| &row[w[0]..w[1]]).copied().collect(),
                };
                let shape = if axis == 0 { vec![w[1] - w[0], cols] } else { vec![rows, w[1] - w[0]] };
                upload(HostTensor { shape, data })
            })
            .collect();
        Matrix { parts, axis, bounds }
    }

    /// `[rows, cols]`.
    pub fn dims(&self) -> [usize; 2] {
        let across = self.parts[0].dims()[1 - self.axis];
        let along = *self.bounds.last().expect("a matrix has a part");
        if self.axis == 0 {
            [along, across]
        } else {
            [across, along]
        }
    }

    /// How many tensors hold the matrix.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The one tensor of a matrix held whole (a training leaf, say); `None` when in parts.
    pub fn as_whole(&self) -> Option<&Tensor<2>> {
        match &self.parts[..] {
            [t] => Some(t),
            _ => None,
        }
    }

    /// The transpose (views of the same parts; nothing is copied).
    pub fn transpose(&self) -> Matrix {
        Matrix {
            parts: self.parts.iter().map(|p| p.clone().transpose()).collect(),
            axis: 1 - self.axis,
            bounds: self.bounds.clone(),
        }
    }

    /// The same matrix outside autodiff.
    pub fn without_autodiff(&self) -> Matrix {
        Matrix {
            parts: self.parts.iter().map(|p| p.clone().without_autodiff()).collect(),
            axis: self.axis,
            bounds: self.bounds.clone(),
        }
    }

    /// `x · W` for an f32 `x: [N, rows]`, as f32 `[N, cols]` (16-bit parts multiply as
    /// autocast does, see [`super::WeightsDtype`]). Parts along the columns give the columns of
    /// the product; parts along the rows add up.
    pub fn matmul(&self, x: Tensor<2>) -> Tensor<2> {
        if let Some(w) = self.as_whole() {
            return half::matmul(x, w);
        }
        let products = self.spans().map(|(w, start, len)| match self.axis {
            0 => half::matmul(x.clone().narrow(1, start, len), w),
            _ => half::matmul(x.clone(), w),
        });
        match self.axis {
            0 => products.reduce(|a, b| a + b).expect("a matrix has a part"),
            _ => Tensor::cat(products.collect(), 1),
        }
    }

    /// Rows `ids` (`dim` 0) or columns `ids` (`dim` 1) as f32: `[n, cols]` or `[rows, n]`.
    pub fn select(&self, dim: usize, ids: Tensor<1, Int>) -> Tensor<2> {
        if let Some(w) = self.as_whole() {
            return half::widen(w.clone().select(dim, ids));
        }
        if dim != self.axis {
            let picked = self.parts.iter().map(|p| half::widen(p.clone().select(dim, ids.clone())));
            return Tensor::cat(picked.collect(), self.axis);
        }
        // Each index from the one part holding it: every part looks up a clamped index, and
        // the rows of other parts are zeroed before the sum.
        let n = ids.dims()[0];
        let shape = if dim == 0 { [n, 1] } else { [1, n] };
        self.spans()
            .map(|(w, start, len)| {
                let local = ids.clone().sub_scalar(start as i64).clamp(0, len as i64 - 1);
                let outside =
                    ids.clone().lower_elem(start as i64).bool_or(ids.clone().greater_equal_elem((start + len) as i64));
                half::widen(w.clone().select(dim, local)).mask_fill(outside.reshape(shape), 0.0)
            })
            .reduce(|a, b| a + b)
            .expect("a matrix has a part")
    }

    /// Each part with where it starts along the axis and its length.
    fn spans(&self) -> impl Iterator<Item = (&Tensor<2>, usize, usize)> {
        self.parts.iter().zip(self.bounds.windows(2)).map(|(p, w)| (p, w[0], w[1] - w[0]))
    }
}

/// Slack left under the limit for the allocator's alignment (wgpu's largest offset alignment).
const ALIGNMENT: usize = 256;

/// How many of `along` slices of `slice_bytes` each one part holds within `limit` bytes.
fn part_length(along: usize, slice_bytes: usize, limit: Option<usize>) -> usize {
    match limit {
        None => along,
        Some(limit) => (limit.saturating_sub(ALIGNMENT) / slice_bytes.max(1)).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(rows: usize, cols: usize) -> HostTensor {
        HostTensor { shape: vec![rows, cols], data: (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect() }
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    /// Equal up to f32 rounding (parts along the rows of a product add partial sums).
    fn same(a: Tensor<2>, b: Tensor<2>, what: &str) {
        let (a, b) = (values(a), values(b));
        assert_eq!(a.len(), b.len(), "{what}");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{what}: {x} vs {y}");
        }
    }

    /// Every operation on a matrix cut into parts (either axis, a last part shorter than the
    /// others) gives the whole matrix's values.
    #[test]
    fn parts_compute_what_the_whole_matrix_does() {
        let device = crate::device::Compute::cpu().device;
        let up = |t: HostTensor| t.upload(&device);
        let (rows, cols) = (7, 5);
        let whole = Matrix::whole(up(host(rows, cols)));
        let x = Tensor::<2>::from_data(TensorData::new(host(3, rows).data, [3, rows]), &device);
        let xt = Tensor::<2>::from_data(TensorData::new(host(2, cols).data, [2, cols]), &device);
        let ids = |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device);
        for axis in [0, 1] {
            // Room for two slices (rows of 5 or columns of 7 values) per part.
            let slice = if axis == 0 { cols } else { rows } * 4;
            let split = Matrix::upload_in_parts(host(rows, cols), axis, 4, Some(2 * slice + ALIGNMENT), up);
            assert_eq!(split.parts(), if axis == 0 { 4 } else { 3 }, "axis {axis}");
            assert_eq!(split.dims(), [rows, cols]);
            same(split.matmul(x.clone()), whole.matmul(x.clone()), &format!("x·W, axis {axis}"));
            let (st, wt) = (split.transpose(), whole.transpose());
            assert_eq!(st.dims(), [cols, rows]);
            same(st.matmul(xt.clone()), wt.matmul(xt.clone()), &format!("x·Wᵀ, axis {axis}"));
            let r = ids(&[6, 0, 3, 3, 5]);
            assert_eq!(values(split.select(0, r.clone())), values(whole.select(0, r)), "rows, axis {axis}");
            let c = ids(&[4, 1, 0, 2]);
            assert_eq!(values(split.select(1, c.clone())), values(whole.select(1, c)), "columns, axis {axis}");
        }
        assert_eq!(Matrix::upload_in_parts(host(rows, cols), 0, 4, None, up).parts(), 1);
    }
}
