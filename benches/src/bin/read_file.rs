//! Read one file and print `rows=<n> seconds=<s>` (time spent reading, not starting up).
//!
//! `read_file ours|arrow PATH`: `ours` reads through connector-file (format from the extension),
//! `arrow` with arrow-rs's own reader (`.parquet` or `.csv`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reader, path] = args.as_slice() else {
        eprintln!("usage: read_file ours|arrow PATH");
        return ExitCode::from(2);
    };
    let path = Path::new(path);
    let start = Instant::now();
    let rows = match reader.as_str() {
        "ours" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(benches::ours::read(path))),
        "arrow" => match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => benches::arrow_read_parquet(path),
            Some("csv") => benches::arrow_read_csv(path),
            _ => Err("arrow reader: only .parquet and .csv".into()),
        },
        other => Err(format!("unknown reader {other:?}").into()),
    };
    match rows {
        Ok(rows) => {
            println!("rows={rows} seconds={:.4}", start.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("read_file: {e}");
            ExitCode::FAILURE
        }
    }
}
