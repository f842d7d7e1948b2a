//! What a gradient becomes before projection (LESS's gradient types): `sgd` (the gradient),
//! `sign` (its sign), or `adam`: the Adam update direction the checkpoint's optimizer would
//! take, from its saved moments, with NO bias correction and ε INSIDE the square root, as LESS
//! computes it: m' = β1·m + (1−β1)·g, v' = β2·v + (1−β2)·g², Γ = m' / √(v' + ε).

use crate::train::AdamW;

/// A gradient transform.
#[derive(Debug, Clone)]
pub enum Transform {
    /// The gradient as it is (LESS's `sgd` gradient type; so named in store keys).
    Identity,
    Sign,
    Adam {
        m: Vec<f32>,
        v: Vec<f32>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        /// Identifies the moments in store keys (hash of the optimizer file).
        source: String,
    },
}

impl Transform {
    /// Adam preconditioning with a checkpoint's moments.
    pub fn adam(opt: &AdamW, source: String) -> Self {
        Transform::Adam {
            m: opt.m.clone(),
            v: opt.v.clone(),
            beta1: opt.config.beta1,
            beta2: opt.config.beta2,
            eps: opt.config.eps,
            source,
        }
    }

    /// The name recorded in a store's key.
    pub fn key(&self) -> String {
        match self {
            Transform::Identity => "sgd".into(),
            Transform::Sign => "sign".into(),
            Transform::Adam { source, .. } => format!("adam:{source}"),
        }
    }

    /// Transforms rows of `g` (`[e, n]`) in place.
    pub fn apply(&self, g: &mut [f32], n: usize) {
        match self {
            Transform::Identity => {}
            Transform::Sign => g.iter_mut().for_each(|x| {
                *x = if *x > 0.0 {
                    1.0
                } else if *x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }),
            Transform::Adam { m, v, beta1, beta2, eps, .. } => {
                assert_eq!(m.len(), n, "optimizer moments do not fit the gradient");
                for row in g.chunks_mut(n) {
                    for (i, x) in row.iter_mut().enumerate() {
                        let gi = *x as f64;
                        let mm = beta1 * m[i] as f64 + (1.0 - beta1) * gi;
                        let vv = beta2 * v[i] as f64 + (1.0 - beta2) * gi * gi;
                        *x = (mm / (vv + eps).sqrt()) as f32;
                    }
                }
            }
        }
    }
}
