//! Selection methods. Each turns features into scores; `select` turns scores into a subset.

pub mod baselines;
pub mod gpu_knn;
pub mod gpu_score;
pub mod ivf;
pub mod less;
pub mod prism;
pub mod solve;
pub mod tif;
pub mod tsds;
