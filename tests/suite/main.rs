//! The integration tests, as one binary: each module used to be its own test crate, and every one
//! linked its own copy of Burn, wgpu and naga, so CI spent its time (and disk) linking.
//! Run a part with `cargo test --test suite reference::` (a module) or a single test by name.

mod common;

mod chat;
mod cli;
mod demo;
mod head;
mod in_memory;
mod loading;
mod methods;
mod prism;
mod projection;
mod reference;
mod score;
mod store;
mod suite_data;
mod tif;
mod training;
mod tsds;
mod web;
