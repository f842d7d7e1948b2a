//! Selection methods. Each turns features into scores; `select` turns scores into a subset.

pub mod less;
pub mod prism;
pub mod solve;
