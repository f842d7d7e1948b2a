//! Selection methods. Each turns features into scores; `select` turns scores into a subset.

pub mod baselines;
pub mod gpu_score;
pub mod knn;
pub mod less;
pub mod prism;
pub mod solve;
pub mod subtasks;
pub mod tif;
pub mod tsds;
pub mod unit;
