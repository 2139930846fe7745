#!/usr/bin/env bash
# Runs a libFuzzer target on the stable toolchain, where `cargo fuzz` (which
# needs nightly for its sanitizer flags) cannot: the targets are built with
# SanitizerCoverage through stable codegen options, without AddressSanitizer
# (the code under test is safe Rust, so a panic is the failure looked for).
#
#   fuzz/run-stable.sh snapshot_decode -max_total_time=600
#   fuzz/run-stable.sh graph_ops -max_total_time=600
#
# Arguments after the target's name go to libFuzzer. The snapshot decoder
# starts from valid files written by the stable decoder test; new inputs and
# crashes stay under fuzz/corpus/<target> and fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run-stable.sh <snapshot_decode|graph_ops> [libFuzzer options]}
shift
triple=$(rustc -vV | sed -n 's/^host: //p')
# Building for an explicit target keeps these flags off build scripts and
# proc macros, which would not link without libFuzzer.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --release --locked --target "$triple" --bin "$target"
corpus="corpus/$target"
mkdir -p "$corpus" "artifacts/$target"
if [ "$target" = snapshot_decode ] && [ -z "$(ls -A "$corpus")" ]; then
  (cd .. && env -u RUSTFLAGS RELGRAPH_SEED_CORPUS="$PWD/fuzz/$corpus" RELGRAPH_FUZZ_SECS=1 \
    cargo test -q -p relgraph-snapshot --test decoder)
fi
exec "target/$triple/release/$target" -artifact_prefix="artifacts/$target/" "$@" "$corpus"
