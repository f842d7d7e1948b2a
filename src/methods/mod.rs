//! Selection methods. Each turns features into scores; `select` turns scores into a subset.

pub mod less;
