//! Scratch timing.
fn main() -> anyhow::Result<()> {
    let s = relgraph_cli::sqlite_bench::Scratch::new()?;
    let which = std::env::args().nth(1).unwrap_or_default();
    for (name, f) in [("W1", relgraph_cli::sqlite_bench::w1 as fn(&std::path::Path, usize) -> anyhow::Result<relgraph_cli::sqlite_bench::Run>), ("W2", relgraph_cli::sqlite_bench::w2), ("W3", relgraph_cli::sqlite_bench::w3)] {
        if !which.is_empty() && which != name { continue; }
        let r = f(&s.0, 10000)?;
        println!("{name}: relgraph {:?} baseline {:?} ratio {:.2} setup {:?}", r.relgraph, r.baseline, r.baseline.as_secs_f64() / r.relgraph.as_secs_f64(), r.setup);
    }
    Ok(())
}
