//! The snapshot decoder over a generated corpus, on the stable toolchain:
//! valid files mutated at random (flipped bits, cut or grown files,
//! overwritten fields), half of them resealed with correct checksums so
//! that rkyv's validation and the log replay see the damage, not just the
//! CRCs. Every input must decode or fail with an error; a panic fails the
//! test and leaves the input in the temporary folder.
//!
//! `RELGRAPH_FUZZ_SECS` bounds the run (default 10 s); `RELGRAPH_SEED`
//! replays one. `RELGRAPH_SEED_CORPUS=dir` also writes the valid seed files
//! into `dir`, the starting corpus of the libFuzzer target
//! (`fuzz/run-stable.sh snapshot_decode`).

use std::path::Path;

use relgraph_core::{Cell, RowOp, Schema, Store, Value};
use relgraph_snapshot::format::{HEADER_LEN, padded};
use relgraph_snapshot::{Compaction, SnapshotOptions, SnapshotStore, decode};

/// splitmix64: a tiny deterministic generator, enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn insert(schema: &Schema, table: &str, values: Vec<Value>) -> RowOp {
    RowOp::Insert {
        table: schema.table_id(table).unwrap(),
        row: values.into_iter().map(Cell::Value).collect(),
    }
}

/// Valid files: a log of several batches, the same compacted, and one with a torn tail.
fn seeds(dir: &Path) -> Vec<Vec<u8>> {
    let schema = relgraph_testkit::conformance::schema();
    let path = dir.join("seed.snap");
    let _ = std::fs::remove_file(&path);
    let options = SnapshotOptions { sync: false, compaction: Compaction::Never };
    let mut store = SnapshotStore::with_options(&path, options).unwrap();
    store.create_tables(&schema).unwrap();
    let mut out = vec![std::fs::read(&path).unwrap()];
    for round in 0..4i64 {
        store.begin().unwrap();
        let mut ops =
            vec![insert(&schema, "parent", vec![Value::Null, format!("parent number {round}").into()])];
        for k in 0..3 {
            let id = round * 10 + k;
            ops.push(insert(
                &schema,
                "child",
                vec![
                    id.into(),
                    (round + 1).into(),
                    (k % 2 == 0).into(),
                    (id as f64).into(),
                    Value::Blob(vec![k as u8; 3].into()),
                    "x".into(),
                ],
            ));
            ops.push(insert(&schema, "assoc", vec![(round + 1).into(), id.into()]));
        }
        ops.push(insert(&schema, "kid", vec![(round + 1).into(), (round + 1).into()]));
        store.apply_all(&schema, &ops).unwrap();
        store.commit().unwrap();
    }
    let logged = std::fs::read(&path).unwrap();
    out.push(logged.clone());
    out.push(logged[..logged.len() - 7].to_vec());
    store.compact().unwrap();
    out.push(std::fs::read(&path).unwrap());
    out
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Recomputes every checksum the structure still allows, so that damage
/// reaches the layers behind them.
fn reseal(b: &mut [u8]) {
    if b.len() < HEADER_LEN {
        return;
    }
    let base_len = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;
    let base_end = HEADER_LEN.saturating_add(padded(base_len.min(1 << 40)));
    if base_end <= b.len() {
        let crc = crc32fast::hash(&b[HEADER_LEN..base_end]);
        put_u32(b, 32, crc);
    }
    let crc = crc32fast::hash(&b[..60]);
    put_u32(b, 60, crc);
    let (mut at, mut sequence) = (base_end, 1);
    while at + 16 <= b.len() {
        let end = at + 16 + padded(get_u32(b, at) as usize);
        if end > b.len() {
            break;
        }
        let crc = crc32fast::hash(&b[at + 16..end]);
        put_u32(b, at + 4, crc);
        put_u32(b, at + 8, sequence);
        let crc = crc32fast::hash(&b[at..at + 12]);
        put_u32(b, at + 12, crc);
        at = end;
        sequence += 1;
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(b.len());
        match rng.below(7) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.next() as u8,
            2 => b.truncate(at),
            3 => {
                let extra: Vec<u8> = (0..1 + rng.below(32)).map(|_| rng.next() as u8).collect();
                b.splice(at..at, extra);
            }
            4 if at + 4 <= b.len() => {
                let v = [0, 1, u32::MAX, i32::MAX as u32, b.len() as u32, rng.next() as u32][rng.below(6)];
                put_u32(&mut b, at & !3, v);
            }
            5 => {
                let len = rng.below(64).min(b.len() - at);
                let chunk = b[at..at + len].to_vec();
                let to = rng.below(b.len());
                b.splice(to..to, chunk);
            }
            _ => {
                let len = rng.below(16).min(b.len() - at);
                b[at..at + len].fill(0);
            }
        }
    }
    if rng.below(2) == 0 {
        reseal(&mut b);
    }
    b
}

#[test]
fn the_decoder_survives_a_mutated_corpus() {
    let dir = std::env::temp_dir().join(format!("relgraph-decoder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = seeds(&dir);
    for seed in &seeds {
        decode(seed).expect("every seed decodes");
    }
    if let Some(corpus) = std::env::var_os("RELGRAPH_SEED_CORPUS") {
        let corpus = Path::new(&corpus);
        std::fs::create_dir_all(corpus).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(corpus.join(format!("seed-{i}.snap")), seed).unwrap();
        }
    }
    let secs: f64 = std::env::var("RELGRAPH_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let seed: u64 = std::env::var("RELGRAPH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    println!("decoder corpus seed: RELGRAPH_SEED={seed}");
    let mut rng = Rng(seed);
    let start = std::time::Instant::now();
    let (mut runs, mut decoded) = (0u64, 0u64);
    while start.elapsed().as_secs_f64() < secs {
        let pick = rng.below(seeds.len());
        let input = mutate(&mut rng, &seeds[pick]);
        match std::panic::catch_unwind(|| decode(&input)) {
            Ok(Ok(_)) => decoded += 1,
            Ok(Err(_)) => {}
            Err(_) => {
                let saved = dir.join(format!("panic-{seed}-{runs}.snap"));
                std::fs::write(&saved, &input).unwrap();
                panic!("the decoder panicked on {} (RELGRAPH_SEED={seed})", saved.display());
            }
        }
        runs += 1;
    }
    println!(
        "decoder corpus: {runs} inputs in {:.1} s, {decoded} decoded, {} refused with an error",
        start.elapsed().as_secs_f64(),
        runs - decoded
    );
    assert!(runs > 1_000, "{runs}");
    let _ = std::fs::remove_dir_all(&dir);
}
