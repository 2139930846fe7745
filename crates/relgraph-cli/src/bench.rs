//! `relgraph bench`: the workloads of WORKLOADS.md, each printed beside the
//! figure it is compared with.

use std::io::Write;
use std::time::Duration;

use clap::{Args, ValueEnum};
use relgraph_cli::phases::{FlushPhases, ORDER, Phases};
use relgraph_graph::Graph;
use relgraph_testkit::workloads::{self, Handles, W4Size, W4Timings};

/// Which workload to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// One-to-many insert: 10,000 parents with 10 children each (needs --store).
    #[value(name = "W1", alias = "w1")]
    W1,
    /// Many-to-many insert: 10,000 x 10,000 with 100,000 links (needs --store).
    #[value(name = "W2", alias = "w2")]
    W2,
    /// Mixed change on W1's rows: moves, renames, deletes with orphans (needs --store).
    #[value(name = "W3", alias = "w3")]
    W3,
    /// In memory, no store: 1,000,000 links and unlinks each way.
    #[value(name = "W4", alias = "w4")]
    W4,
}

/// Which store to flush into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// The embedded SQLite store (a file in the temporary folder).
    Sqlite,
    /// A PostgreSQL server (see --url); each run works in a schema of its own.
    Postgres,
    /// The snapshot store (a file in the temporary folder), beside raw rkyv.
    Snapshot,
}

/// Options of `relgraph bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The workload (default: W4 without --store, W1, W2 and W3 with one).
    #[arg(long, value_enum)]
    workload: Option<Workload>,
    /// Flush into this store (W1, W2, W3); without it, W4 runs in memory.
    #[arg(long, value_enum)]
    store: Option<StoreKind>,
    /// The PostgreSQL server, as a URL or libpq string (default: $RELGRAPH_PG_URL,
    /// then the local server).
    #[arg(long)]
    url: Option<String>,
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Also report where relgraph's flush spent its time, phase by phase
    /// (medians; the store's `apply` and `commit` run on its own thread in
    /// large flushes, beside the session's `build` or `record`).
    #[arg(long)]
    phases: bool,
    /// Give the raw SQLite baseline a page cache of this many KiB (default:
    /// SQLite's own, 2,000 KiB; the store opens its connections with 65,536).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    raw_cache_kib: Option<i64>,
    /// Scale the workload down by this factor (for a quick look; the figures
    /// to compare with are for the full size).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000), hide = true)]
    scale_down: u32,
}

/// SQLAlchemy 2.1's W4 figures from WORKLOADS.md, in ns per operation.
const SQLALCHEMY_NS: [f64; 4] = [9_200.0, 7_200.0, 5_700.0, 5_500.0];
const OPERATIONS: [&str; 4] = ["link", "unlink", "m2m_append", "m2m_remove"];
const BUDGET_NS: f64 = 100.0;

/// Runs the requested workloads, printing their figures to `out`.
///
/// # Errors
/// The stores' and IO errors, writing to `out` included.
pub fn run(args: &BenchArgs, allocated: &dyn Fn() -> usize, out: &mut dyn Write) -> anyhow::Result<()> {
    match (args.store, args.workload) {
        (None, None | Some(Workload::W4)) => w4(args, allocated, out),
        (None, Some(w)) => anyhow::bail!("{w:?} flushes into a store: add --store sqlite"),
        (Some(_), Some(Workload::W4)) => anyhow::bail!("W4 runs in memory: drop --store"),
        (Some(store), Some(w)) => flush(args, store, &[w], out),
        (Some(store), None) => flush(args, store, &[Workload::W1, Workload::W2, Workload::W3], out),
    }
}

/// The baseline the SQLite figures are compared with.
const SQLITE_BASELINE: &str = "rusqlite, one prepared statement per row, foreign keys on";
/// The baseline the snapshot figures are compared with.
const SNAPSHOT_BASELINE: &str = "raw rkyv: serialize, write, fsync / read, validate";

fn flush(
    args: &BenchArgs,
    store: StoreKind,
    workloads: &[Workload],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use relgraph_cli::{pg_bench, snapshot_bench, sqlite_bench};
    let scratch = sqlite_bench::Scratch::new()?;
    let url = args
        .url
        .clone()
        .or_else(|| std::env::var("RELGRAPH_PG_URL").ok())
        .unwrap_or_else(|| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let n = 10_000 / args.scale_down as usize;
    let sqlite_baseline = match args.raw_cache_kib {
        Some(kib) => format!("{SQLITE_BASELINE}, page cache {kib} KiB"),
        None => SQLITE_BASELINE.to_owned(),
    };
    let (name, baseline_name) = match store {
        StoreKind::Sqlite => ("sqlite", sqlite_baseline.as_str()),
        StoreKind::Postgres => ("postgres", pg_bench::BASELINE),
        StoreKind::Snapshot => ("snapshot", SNAPSHOT_BASELINE),
    };
    let snapshot = store == StoreKind::Snapshot;
    if !args.json {
        writeln!(out, "{name}, median of {} runs; baseline: {baseline_name}, in the same run", args.runs)?;
        write!(
            out,
            "{:<9} {:>8} {:>12} {:>12} {:>7} {:>14}",
            "workload", "rows", "relgraph s", "baseline s", "ratio", "load s (W3)"
        )?;
        if snapshot {
            write!(out, " {:>10} {:>12} {:>10}", "open s", "raw read s", "open ratio")?;
        }
        writeln!(out)?;
    }
    for &w in workloads {
        let collector = Phases::default();
        let mut phases: Vec<FlushPhases> = Vec::new();
        let runs = (0..args.runs)
            .map(|_| {
                let run = || match (store, w) {
                    (StoreKind::Sqlite, Workload::W1) => sqlite_bench::w1(&scratch.0, n, args.raw_cache_kib),
                    (StoreKind::Sqlite, Workload::W2) => sqlite_bench::w2(&scratch.0, n, args.raw_cache_kib),
                    (StoreKind::Sqlite, _) => sqlite_bench::w3(&scratch.0, n, args.raw_cache_kib),
                    (StoreKind::Postgres, Workload::W1) => pg_bench::w1(&url, n),
                    (StoreKind::Postgres, Workload::W2) => pg_bench::w2(&url, n),
                    (StoreKind::Postgres, _) => pg_bench::w3(&url, n),
                    (StoreKind::Snapshot, Workload::W1) => snapshot_bench::w1(&scratch.0, n),
                    (StoreKind::Snapshot, Workload::W2) => snapshot_bench::w2(&scratch.0, n),
                    (StoreKind::Snapshot, _) => snapshot_bench::w3(&scratch.0, n),
                };
                if !args.phases {
                    return run();
                }
                let result = tracing::subscriber::with_default(collector.subscriber(), run);
                // The timed flush is each run's last (W3's first writes W1's rows).
                phases.extend(collector.take().pop());
                result
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let phase_medians: Vec<(&str, f64)> = ORDER
            .iter()
            .filter(|&&p| phases.iter().any(|f| f.contains_key(p)))
            .map(|&p| (p, median(phases.iter().map(|f| f.get(p).map_or(0.0, |d| d.as_secs_f64())).collect())))
            .collect();
        let relgraph = median(runs.iter().map(|r| r.relgraph.as_secs_f64()).collect());
        let baseline = median(runs.iter().map(|r| r.baseline.as_secs_f64()).collect());
        let setup = median(runs.iter().map(|r| r.setup.as_secs_f64()).collect());
        let ratio = baseline / relgraph;
        let open = runs[0].open.map(|_| {
            let opened = median(runs.iter().filter_map(|r| r.open).map(|o| o.0.as_secs_f64()).collect());
            let read = median(runs.iter().filter_map(|r| r.open).map(|o| o.1.as_secs_f64()).collect());
            (opened, read)
        });
        if args.json {
            let open = open.map_or(String::new(), |(o, r)| {
                format!(",\"open_s\":{o:.6},\"baseline_open_s\":{r:.6},\"open_ratio\":{:.3}", r / o)
            });
            let phases = if phase_medians.is_empty() {
                String::new()
            } else {
                let fields: Vec<String> =
                    phase_medians.iter().map(|(p, s)| format!("\"{p}\":{s:.6}")).collect();
                format!(",\"phases_s\":{{{}}}", fields.join(","))
            };
            writeln!(
                out,
                "{{\"workload\":\"{w:?}\",\"store\":\"{name}\",\"relgraph_s\":{relgraph:.6},\"baseline\":\"{baseline_name}\",\"baseline_s\":{baseline:.6},\"ratio\":{ratio:.3}{open}{phases}}}"
            )?;
        } else {
            let load = if w == Workload::W3 { format!("{setup:.3}") } else { "-".into() };
            write!(
                out,
                "{:<9} {:>8} {relgraph:>12.4} {baseline:>12.4} {ratio:>7.2} {load:>14}",
                format!("{w:?}"),
                runs[0].rows
            )?;
            if let Some((o, r)) = open {
                write!(out, " {o:>10.4} {r:>12.4} {:>10.2}", r / o)?;
            }
            writeln!(out)?;
            if !phase_medians.is_empty() {
                let parts: Vec<String> =
                    phase_medians.iter().map(|(p, s)| format!("{p} {:.1}", s * 1000.0)).collect();
                writeln!(out, "{:<9} phases, ms (median): {}", "", parts.join(", "))?;
            }
        }
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn w4(args: &BenchArgs, allocated: &dyn Fn() -> usize, out: &mut dyn Write) -> anyhow::Result<()> {
    let full = W4Size::FULL;
    let k = args.scale_down as usize;
    let size = W4Size { parents: full.parents / k, lefts: full.lefts / k, rights: full.rights / k, ..full };
    let per_op = |d: Duration, n: usize| d.as_nanos() as f64 / n as f64;
    let runs: Vec<W4Timings> = (0..args.runs).map(|_| workloads::run_w4(size)).collect();
    let figures: Vec<f64> = (0..4)
        .map(|i| {
            median(
                runs.iter()
                    .map(|t| match i {
                        0 => per_op(t.link, t.o2m_ops),
                        1 => per_op(t.unlink, t.o2m_ops),
                        2 => per_op(t.m2m_append, t.m2m_ops),
                        _ => per_op(t.m2m_remove, t.m2m_ops),
                    })
                    .collect(),
            )
        })
        .collect();
    if args.json {
        for (op, ns) in OPERATIONS.iter().zip(&figures) {
            writeln!(out, "{{\"workload\":\"W4\",\"operation\":\"{op}\",\"ns_per_op\":{ns:.1}}}")?;
        }
        return Ok(());
    }
    let memory = measure_memory(size, allocated);
    writeln!(
        out,
        "W4, in memory: {} one-to-many and {} many-to-many operations per phase, median of {} runs",
        runs[0].o2m_ops, runs[0].m2m_ops, args.runs
    )?;
    writeln!(
        out,
        "{:<12} {:>10} {:>16} {:>10} {:>8}",
        "operation", "ns/op", "SQLAlchemy ns/op", "speed-up", "budget"
    )?;
    for ((op, ns), sqla) in OPERATIONS.iter().zip(&figures).zip(SQLALCHEMY_NS) {
        let verdict = if *ns < BUDGET_NS { "ok" } else { "OVER" };
        writeln!(out, "{op:<12} {ns:>10.1} {sqla:>16.0} {:>9.0}x {verdict:>8}", sqla / ns)?;
    }
    writeln!(
        out,
        "memory: {:.1} bytes per object ({:.1} beyond its 24-byte column values), {:.1} bytes per link \
         (heap bytes requested, allocator overhead not included)",
        memory.per_object, memory.per_object_beyond_values, memory.per_link
    )?;
    Ok(())
}

/// Heap bytes per object and per link on W4's one-to-many shape.
struct Memory {
    per_object: f64,
    per_object_beyond_values: f64,
    per_link: f64,
}

fn measure_memory(size: W4Size, allocated: &dyn Fn() -> usize) -> Memory {
    let schema = workloads::schema();
    let h = Handles::new(&schema);
    let children = size.parents * size.children_per_parent;
    let mut parents = Vec::with_capacity(size.parents);
    let mut kids = Vec::with_capacity(children);
    let mut graph = Graph::new(schema.clone());
    let empty = allocated();
    graph.reserve(size.parents + children, 0);
    parents.extend((0..size.parents).map(|_| graph.insert(h.parent)));
    kids.extend((0..children).map(|_| graph.insert(h.child)));
    let with_objects = allocated();
    graph.reserve(0, children);
    for (j, &c) in kids.iter().enumerate() {
        graph.set(c, h.child_parent, Some(parents[j / size.children_per_parent])).expect("W4 link");
    }
    let with_links = allocated();
    let objects = (size.parents + children) as f64;
    let value_bytes = (size.parents * schema.table(schema.entity(h.parent).table).columns.len()
        + children * schema.table(schema.entity(h.child).table).columns.len())
        * std::mem::size_of::<relgraph_core::Value>();
    let per_object = (with_objects - empty) as f64 / objects;
    Memory {
        per_object,
        per_object_beyond_values: per_object - value_bytes as f64 / objects,
        per_link: (with_links - with_objects) as f64 / children as f64,
    }
}
