//! The real binary on temp dirs, by concern: `select` on the embedded default, clear errors on
//! bad input, the commands chained, where models and data come from, `doctor`, shards.

mod bench;
mod chain;
mod doctor;
mod errors;
mod inputs;
mod select;
mod shards;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gradsift"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run gradsift");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny")
}
