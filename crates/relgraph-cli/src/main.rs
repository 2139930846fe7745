//! `relgraph`: the project's command. `relgraph bench` runs the workloads of
//! WORKLOADS.md and prints relgraph's figures beside the baselines.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bench;

use std::alloc::System;
use std::process::ExitCode;

use cap::Cap;
use clap::{Parser, Subcommand};

/// Counts live heap bytes so `relgraph bench` can state bytes per object and per link.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// relgraph: a relational object graph in memory, persisted row by row.
#[derive(Parser, Debug)]
#[command(name = "relgraph", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a benchmark workload of WORKLOADS.md and print its figures.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args, &|| ALLOCATOR.allocated()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relgraph: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
