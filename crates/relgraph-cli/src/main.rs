//! `relgraph`: the project's command. The snapshot tools read, check and
//! convert snapshot files; `relgraph bench` runs the workloads of
//! WORKLOADS.md and prints relgraph's figures beside the baselines.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bench;

use std::alloc::System;
use std::path::PathBuf;
use std::process::ExitCode;

use cap::Cap;
use clap::{Parser, Subcommand};
use relgraph_cli::tools::{self, DumpFormat};

/// Counts live heap bytes so `relgraph bench` can state bytes per object and per link.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// relgraph: a relational object graph in memory, persisted row by row.
///
/// The snapshot tools work on the files of relgraph's snapshot store
/// (`SnapshotStore`) without the program that wrote them: each file
/// describes its own tables. A damaged or foreign file is reported with
/// what is wrong with it, and the command exits with status 1.
#[derive(Parser, Debug)]
#[command(name = "relgraph", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show a snapshot's header, log and tables (columns, keys, row counts).
    Inspect {
        /// The snapshot file.
        file: PathBuf,
    },
    /// Check a snapshot fully: checksums, validation, index order, and every row's constraints.
    Verify {
        /// The snapshot file.
        file: PathBuf,
    },
    /// Print one table's rows in primary-key order.
    Dump {
        /// The snapshot file.
        file: PathBuf,
        /// The table's name.
        table: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DumpFormat::Text)]
        format: DumpFormat,
    },
    /// Write a snapshot's tables and rows into a new SQLite file.
    Export {
        /// The snapshot file.
        file: PathBuf,
        /// The SQLite file to create.
        sqlite: PathBuf,
        /// Replace the SQLite file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Write a SQLite file's tables and rows into a new snapshot.
    Import {
        /// The SQLite file.
        sqlite: PathBuf,
        /// The snapshot file to create.
        file: PathBuf,
        /// Replace the snapshot file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Rewrite a snapshot as one base image without a log, atomically.
    Compact {
        /// The snapshot file.
        file: PathBuf,
    },
    /// Run a benchmark workload of WORKLOADS.md and print its figures.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = &mut std::io::stdout().lock();
    let result = match cli.command {
        Command::Inspect { file } => tools::inspect(&file, stdout),
        Command::Verify { file } => tools::verify(&file, stdout),
        Command::Dump { file, table, format } => tools::dump(&file, &table, format, stdout),
        Command::Export { file, sqlite, force } => tools::export(&file, &sqlite, force, stdout),
        Command::Import { sqlite, file, force } => tools::import(&sqlite, &file, force, stdout),
        Command::Compact { file } => tools::compact(&file, stdout),
        Command::Bench(args) => bench::run(&args, &|| ALLOCATOR.allocated(), stdout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the output went away (`relgraph dump ... | head`):
        // it has what it wanted, and nothing is wrong with the file.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relgraph: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader has closed it.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
