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
fn bench_phases_reports_each_flush_phase_beside_the_figures() {
    // The timed flush is W3's second: the first writes W1's rows, and must
    // not be counted. At a fifth of the size, W1's flush is pipelined (it
    // has a `build` phase) and W3's is not.
    let args =
        ["bench", "--store", "snapshot", "--workload", "W3", "--runs", "1", "--scale-down", "5", "--phases"];
    let out = relgraph(&[&args[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let phases = json["phases_s"].as_object().expect("phases_s");
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    assert_eq!(names, ["unit_of_work", "order", "apply", "commit", "record", "flush"], "{line}");
    let flush = phases["flush"].as_f64().unwrap();
    assert!(flush > 0.0 && flush <= json["relgraph_s"].as_f64().unwrap() * 1.01, "{line}");

    let out = relgraph(&args);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("phases, ms (median): unit_of_work "), "{text}");
}

#[test]
fn unknown_workload_is_a_clear_error() {
    let out = relgraph(&["bench", "--workload", "W9"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("W9") && err.contains("W4"), "{err}");
}

/// `relgraph bench | head`: output to a pipe its reader has closed ends the
/// command quietly with success, as the snapshot tools do, not in a panic.
#[test]
fn bench_into_a_closed_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relgraph"))
        .args(["bench", "--workload", "W4", "--json", "--runs", "1", "--scale-down", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("relgraph runs");
    // Closed before the first figure is ready, so every write finds it closed.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("relgraph ends");
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "nothing on stderr: {}", String::from_utf8_lossy(&out.stderr));
}
