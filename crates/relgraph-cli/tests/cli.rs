//! The `relgraph` command as a user runs it.

use std::process::Command;

fn relgraph(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relgraph")).args(args).output().expect("relgraph runs")
}

#[test]
fn bench_w4_json_prints_one_object_per_operation() {
    // A scaled-down run keeps the test quick; the figures are not the point here.
    let out = relgraph(&["bench", "--workload", "W4", "--json", "--runs", "1", "--scale-down", "100"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (line, op) in lines.iter().zip(["link", "unlink", "m2m_append", "m2m_remove"]) {
        assert!(
            line.starts_with(&format!("{{\"workload\":\"W4\",\"operation\":\"{op}\",\"ns_per_op\":")),
            "{line}"
        );
        let ns: f64 = line.rsplit(':').next().unwrap().trim_end_matches('}').parse().unwrap();
        assert!(ns > 0.0 && ns.is_finite(), "{line}");
    }
}

#[test]
fn bench_w4_table_names_the_baseline_and_memory() {
    let out = relgraph(&["bench", "--runs", "1", "--scale-down", "100"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("SQLAlchemy ns/op")
            && text.contains("bytes per object")
            && text.contains("bytes per link"),
        "{text}"
    );
}

#[test]
fn unknown_workload_is_a_clear_error() {
    let out = relgraph(&["bench", "--workload", "W9"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("W9") && err.contains("W4"), "{err}");
}
