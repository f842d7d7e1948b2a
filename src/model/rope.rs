//! Rotary position embeddings: the inverse frequencies a checkpoint's RoPE block describes
//! (with the scalings Transformers implements for longer contexts), and the cos/sin tables a
//! forward pass multiplies queries and keys by. Every step is computed in the precision
//! Transformers uses (f32 frequencies, angles from them), so the tables match its own.

use burn::prelude::*;

use super::dtype::FloatKind;

/// How RoPE's inverse frequencies are rescaled for a longer context.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// `linear`: every frequency divided by `factor`.
    Linear {
        factor: f32,
    },
    /// `llama3` (Llama-3.1 and later): low frequencies divided by `factor`, high ones kept,
    /// the band between blended smoothly.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_positions: f32,
    },
    /// `yarn` (Qwen's long-context settings, DeepSeek): each frequency blends its original
    /// value with the interpolated one (divided by `factor`) along a ramp over the dimensions
    /// between the `beta_fast` and `beta_slow` rotation counts; cos and sin are scaled by
    /// `attention_factor`.
    Yarn {
        factor: f32,
        original_max_positions: f64,
        beta_fast: f64,
        beta_slow: f64,
        truncate: bool,
        attention_factor: f64,
    },
    /// `longrope` (Phi-3.5, Phi-4-mini): one divisor per frequency, the `short` set for a
    /// sequence of at most `original_max_positions` tokens and the `long` set beyond; cos and
    /// sin are scaled by `attention_factor`.
    LongRope {
        short: Vec<f32>,
        long: Vec<f32>,
        original_max_positions: usize,
        attention_factor: f64,
    },
}

impl RopeScaling {
    /// The factor cos and sin are multiplied by (1 for the scalings without one).
    pub fn attention_factor(&self) -> f64 {
        match self {
            RopeScaling::Yarn { attention_factor, .. } | RopeScaling::LongRope { attention_factor, .. } => {
                *attention_factor
            }
            _ => 1.0,
        }
    }

    /// Whether a sequence of `len` tokens uses other frequencies than a short one. Only
    /// LongRoPE switches, and Transformers decides by the sequence's own length (its largest
    /// position + 1), so the choice is made per row, never per padded batch.
    pub fn is_long(&self, len: usize) -> bool {
        matches!(self, RopeScaling::LongRope { original_max_positions, .. } if len > *original_max_positions)
    }

    /// Whether a sequence may ever take another set of frequencies ([`Self::is_long`]).
    pub fn switches(&self) -> bool {
        matches!(self, RopeScaling::LongRope { .. })
    }
}

/// The rotary embedding of one kind of layer: its base and its scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeSpec {
    pub theta: f64,
    pub scaling: RopeScaling,
}

impl RopeSpec {
    /// The `dim / 2` inverse frequencies of a `dim`-wide rotation, in f32 as Transformers
    /// computes them; `long` picks LongRoPE's long set.
    pub fn inv_freqs(&self, dim: usize, long: bool) -> Vec<f32> {
        let base = self.theta as f32;
        // base^(2i/dim), the exponent an f32 division as `arange(0, dim, 2).float() / dim`.
        let power = |i: usize| base.powf((2 * i) as f32 / dim as f32);
        let half = dim / 2;
        match &self.scaling {
            RopeScaling::None => (0..half).map(|i| 1.0 / power(i)).collect(),
            RopeScaling::Linear { factor } => (0..half).map(|i| 1.0 / power(i) / factor).collect(),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_positions } => (0..half)
                .map(|i| {
                    let inv_freq = 1.0 / power(i);
                    let wavelen = 2.0 * std::f32::consts::PI / inv_freq;
                    let (low_wavelen, high_wavelen) =
                        (original_max_positions / low_freq_factor, original_max_positions / high_freq_factor);
                    if wavelen > low_wavelen {
                        inv_freq / factor
                    } else if wavelen < high_wavelen {
                        inv_freq
                    } else {
                        let smooth =
                            (original_max_positions / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
                    }
                })
                .collect(),
            RopeScaling::Yarn { factor, original_max_positions, beta_fast, beta_slow, truncate, .. } => {
                // The dimension at which a frequency turns `rotations` times over the original
                // context (f64, as Python's math).
                let correction = |rotations: f64| {
                    dim as f64 * (original_max_positions / (rotations * 2.0 * std::f64::consts::PI)).ln()
                        / (2.0 * self.theta.ln())
                };
                let (mut low, mut high) = (correction(*beta_fast), correction(*beta_slow));
                if *truncate {
                    (low, high) = (low.floor(), high.ceil());
                }
                let (low, mut high) = (low.max(0.0) as f32, high.min(dim as f64 - 1.0) as f32);
                if low == high {
                    high += 0.001;
                }
                (0..half)
                    .map(|i| {
                        let ramp = ((i as f32 - low) / (high - low)).clamp(0.0, 1.0);
                        let extrapolation = 1.0 - ramp;
                        let p = power(i);
                        (1.0 / (factor * p)) * (1.0 - extrapolation) + (1.0 / p) * extrapolation
                    })
                    .collect()
            }
            RopeScaling::LongRope { short, long: long_set, .. } => {
                let ext = if long { long_set } else { short };
                (0..half).map(|i| 1.0 / (ext[i] * power(i))).collect()
            }
        }
    }

    /// cos and sin `[1, 1, T, dim]` for positions `0..t`, in HF's rotate-half layout.
    ///
    /// `round_to` rounds the frequencies as Transformers' buffer holds them: the buffer takes
    /// the checkpoint's dtype when a bf16/f16 model is loaded, so a bf16 Qwen2 rotates by
    /// bf16-rounded frequencies (measured: without this, logits drift by ~1e-4). LongRoPE's
    /// long set is computed on first use, after loading, and stays f32.
    pub fn tables(
        &self,
        t: usize,
        dim: usize,
        long: bool,
        round_to: FloatKind,
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>) {
        let round_to = if long { FloatKind::F32 } else { round_to };
        let inv: Vec<f64> = self.inv_freqs(dim, long).into_iter().map(|f| round_to.round(f as f64)).collect();
        let scale = self.scaling.attention_factor();
        let half = dim / 2;
        let mut cos = vec![0f32; t * dim];
        let mut sin = vec![0f32; t * dim];
        for p in 0..t {
            for (i, f) in inv.iter().enumerate() {
                let ang = p as f64 * f;
                for j in [i, i + half] {
                    cos[p * dim + j] = (ang.cos() * scale) as f32;
                    sin[p * dim + j] = (ang.sin() * scale) as f32;
                }
            }
        }
        let mk = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, t, dim]), device);
        (mk(cos), mk(sin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(theta: f64, scaling: RopeScaling) -> RopeSpec {
        RopeSpec { theta, scaling }
    }

    #[test]
    fn llama3_scaling_keeps_high_divides_low_and_blends_between() {
        let s = spec(
            500000.0,
            RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_positions: 8192.0,
            },
        );
        let plain = spec(500000.0, RopeScaling::None).inv_freqs(128, false);
        let scaled = s.inv_freqs(128, false);
        let wavelen = |f: f32| 2.0 * std::f32::consts::PI / f;
        let mut kinds = [0; 3];
        for (&f, &g) in plain.iter().zip(&scaled) {
            if wavelen(f) < 8192.0 / 4.0 {
                assert_eq!(g, f, "shorter than 8192/4: kept");
                kinds[0] += 1;
            } else if wavelen(f) > 8192.0 {
                assert_eq!(g, f / 8.0, "longer than 8192: divided");
                kinds[1] += 1;
            } else {
                assert!(g < f && g > f / 8.0, "between: blended");
                kinds[2] += 1;
            }
        }
        assert!(kinds.iter().all(|&k| k > 0), "every band exercised: {kinds:?}");
    }

    /// YaRN by its definition: frequencies that turn more than `beta_fast` times over the
    /// original context are kept, those that turn fewer than `beta_slow` times are divided by
    /// the factor, and the ones between are blended (the ramp counted in dimension indices).
    #[test]
    fn yarn_keeps_fast_frequencies_and_interpolates_slow_ones() {
        let (dim, theta, original) = (64, 10000.0, 1024.0);
        let s = spec(
            theta,
            RopeScaling::Yarn {
                factor: 4.0,
                original_max_positions: original,
                beta_fast: 32.0,
                beta_slow: 1.0,
                truncate: true,
                attention_factor: 1.0,
            },
        );
        let plain = spec(theta, RopeScaling::None).inv_freqs(dim, false);
        let scaled = s.inv_freqs(dim, false);
        let turns = |f: f32| f64::from(f) * original / (2.0 * std::f64::consts::PI);
        for (&f, &g) in plain.iter().zip(&scaled) {
            if turns(f) > 32.0 * 1.5 {
                assert_eq!(g, f);
            } else if turns(f) < 1.0 / 1.5 {
                assert!((g - f / 4.0).abs() <= f * 1e-6, "{g} vs {}", f / 4.0);
            }
            assert!(g <= f && g >= f / 4.0 * (1.0 - 1e-6));
        }
        assert!(plain.iter().zip(&scaled).any(|(f, g)| g < f && *g > f / 4.0 * 1.0001), "a blended band");
    }

    #[test]
    fn longrope_switches_sets_past_the_original_length_and_scales_the_tables() {
        let scaling = RopeScaling::LongRope {
            short: vec![1.0, 2.0],
            long: vec![4.0, 8.0],
            original_max_positions: 16,
            attention_factor: 1.25,
        };
        assert!(!scaling.is_long(16) && scaling.is_long(17));
        let s = spec(100.0, scaling);
        let plain = spec(100.0, RopeScaling::None).inv_freqs(4, false);
        assert_eq!(s.inv_freqs(4, false), vec![plain[0] / 1.0, plain[1] / 2.0]);
        assert_eq!(s.inv_freqs(4, true), vec![plain[0] / 4.0, plain[1] / 8.0]);
        let (cos, sin) = s.tables(3, 4, false, FloatKind::F32, &Default::default());
        let values = |t: Tensor<4>| -> Vec<f32> { t.into_data().iter::<f32>().collect() };
        let (cos, sin) = (values(cos), values(sin));
        // Position 0: cos = factor, sin = 0; position 2 of the first frequency.
        assert_eq!(&cos[..4], &[1.25; 4]);
        assert_eq!(&sin[..4], &[0.0; 4]);
        let ang = 2.0 * f64::from(plain[0]);
        assert!((f64::from(cos[8]) - ang.cos() * 1.25).abs() < 1e-6);
        assert!((f64::from(sin[10]) - ang.sin() * 1.25).abs() < 1e-6);
    }
}
