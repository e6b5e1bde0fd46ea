//! Generate the benchmark inputs: `gen_tpch --sf 1 --out DIR [--ours-rows N]`.
//!
//! Writes `DIR/lineitem.parquet` and `DIR/lineitem.csv` with arrow-rs's writers (cached: a second
//! run with the same folder reuses them), and `DIR/ours/lineitem.{parquet,csv,json,avro}` through
//! connector-file from the first `N` rows (default 100000) for the interoperability check.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use arrow::array::RecordBatch;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_tpch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> benches::Result<()> {
    let mut sf = 0.1_f64;
    let mut out = PathBuf::from("tpch");
    let mut ours_rows = 100_000_usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sf" => sf = value()?.parse()?,
            "--out" => out = PathBuf::from(value()?),
            "--ours-rows" => ours_rows = value()?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let t = Instant::now();
    let files = benches::ensure_input_files(&out, sf)?;
    eprintln!(
        "gen_tpch: {} rows at SF {sf} in {} and {} ({:.1} s)",
        files.rows,
        files.parquet.display(),
        files.csv.display(),
        t.elapsed().as_secs_f64()
    );

    let mut sample: Vec<RecordBatch> = Vec::new();
    let mut n = 0;
    for b in benches::lineitem(sf) {
        let b = b?;
        let take = b.num_rows().min(ours_rows - n);
        sample.push(b.slice(0, take));
        n += take;
        if n >= ours_rows {
            break;
        }
    }
    let ours = out.join("ours");
    std::fs::create_dir_all(&ours)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for ext in ["parquet", "csv", "json", "avro"] {
        let path = ours.join(format!("lineitem.{ext}"));
        match rt.block_on(benches::ours::write(&path, sample.clone())) {
            Ok(bytes) => eprintln!(
                "gen_tpch: wrote {n} rows, {bytes} bytes to {}",
                path.display()
            ),
            Err(e) => eprintln!("gen_tpch: could not write {}: {e}", path.display()),
        }
    }
    println!("{}", files.rows);
    Ok(())
}
