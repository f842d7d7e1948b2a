//! The `gradsift` command line: arguments (`args`), their meaning as library options
//! (`convert`), one function per subcommand (`commands`), and how errors reach the user
//! (`hints`, [`main`]). clap lives here and in main.rs only.

mod args;
mod commands;
mod convert;
mod heap;
mod hints;

use std::fmt::Display;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// Prints one line on stdout; a closed pipe comes back as an error that [`main`] ends quietly on.
pub(crate) fn say(line: impl Display) -> anyhow::Result<()> {
    Ok(writeln!(io::stdout().lock(), "{line}")?)
}

/// Log lines go to stderr as plain lines (no time, level or target: they are a progress
/// report, not a log file); `--quiet` keeps warnings only.
fn init_logging(quiet: bool) {
    let level = if quiet { tracing::Level::WARN } else { tracing::Level::INFO };
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(level)
        .without_time()
        .with_target(false)
        .with_level(false)
        .init();
}

/// Parses the arguments, runs the subcommand, and reports an error once, with its causes and
/// the flag that fixes it.
pub fn main() -> ExitCode {
    heap::keep_freed_memory();
    let cli = Cli::parse();
    init_logging(cli.quiet);
    let result = match cli.command {
        Command::Devices => commands::devices(),
        Command::Merge { out, shards } => commands::merge(&out, &shards),
        Command::Doctor(a) => commands::doctor(a),
        Command::Featurize(a) => commands::featurize(a),
        Command::Select(a) => commands::select(a),
        Command::Warmup(a) => commands::warmup(a),
        Command::Bench(a) => commands::bench(a),
        Command::MakeData(a) => commands::make_data(a),
        Command::Eval(a) => commands::eval(a),
        Command::Demo(a) => commands::demo(a),
        Command::Plot { dir } => commands::plot(&dir),
    };
    let Err(e) = result else { return ExitCode::SUCCESS };
    // A reader that went away (`gradsift devices | head`) is not an error.
    if e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)) {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {e:#}");
    if let Some(h) = e.chain().find_map(|c| c.downcast_ref::<gradsift::Error>()).and_then(hints::hint) {
        eprintln!("hint: {h}");
    }
    ExitCode::FAILURE
}
