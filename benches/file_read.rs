//! Criterion: read TPC-H `lineitem` (Parquet and CSV) through connector-file and through
//! arrow-rs's own readers, on the same files.
//!
//! `cargo bench -p benches --bench file_read`; the scale factor is `BENCH_SF` (default 0.1, about
//! 600k rows), the files are generated once under the target folder.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn file_read(c: &mut Criterion) {
    let sf: f64 = std::env::var("BENCH_SF")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.1);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tpch-sf{sf}"));
    let files = match benches::ensure_input_files(&dir, sf) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("file_read: cannot generate the input files: {e}");
            return;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("file_read: cannot start tokio: {e}");
            return;
        }
    };
    let expect = files.rows;
    for (name, path) in [("parquet", &files.parquet), ("csv", &files.csv)] {
        let mut group = c.benchmark_group(format!("lineitem_sf{sf}_{name}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(10))
            .throughput(Throughput::Elements(expect as u64));
        group.bench_function("arrow-rs", |b| {
            b.iter(|| {
                let rows = match name {
                    "parquet" => benches::arrow_read_parquet(path),
                    _ => benches::arrow_read_csv(path),
                };
                assert_eq!(rows.ok(), Some(expect), "arrow-rs read the wrong row count");
            });
        });
        // Skip our reader (with a note) if it cannot read this format yet.
        match rt.block_on(benches::ours::read(path)) {
            Ok(rows) if rows == expect => {
                group.bench_function("connector-file", |b| {
                    b.iter(|| {
                        let rows = rt.block_on(benches::ours::read(path));
                        assert_eq!(
                            rows.ok(),
                            Some(expect),
                            "connector-file read the wrong row count"
                        );
                    });
                });
            }
            Ok(rows) => {
                eprintln!("file_read: connector-file read {rows} rows, expected {expect}; skipped");
            }
            Err(e) => eprintln!(
                "file_read: connector-file cannot read {}: {e}; skipped",
                path.display()
            ),
        }
        group.finish();
    }
}

criterion_group!(benches, file_read);
criterion_main!(benches);
