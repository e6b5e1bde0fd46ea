#!/usr/bin/env python3
"""Compare connector-file's readers with arrow-rs, pyarrow and DuckDB on the same files, in one run.

    python3 benches/compare_files.py [--sf 1] [--reps 5] [--out DIR] [--results benches/RESULTS.md] [--no-callgrind]

1. Installs pyarrow, duckdb and fastavro into the cached venv
   ($HOME/.cache/arrow-connectors/peers/venv) if missing, and re-runs itself there.
2. Builds the release bins of the `benches` package (gen_tpch, read_file) and generates TPC-H
   lineitem at the scale factor as Parquet (snappy) and CSV with arrow-rs's writers (cached), plus
   a sample written through connector-file (Parquet, CSV, JSON, Avro).
3. Times every reader on the same files (one warm-up, then --reps runs; medians):
   arrow-rs's own readers and connector-file (time measured inside the process, start-up excluded),
   pyarrow and DuckDB (in this process, multi-threaded as they are by default, and with one thread).
4. Checks that pyarrow (fastavro for Avro) reads the files connector-file wrote, with the right row
   count and the same values as the reference for a sample of rows.
5. Counts the instructions each Rust reader executes on a sample of each file (valgrind's callgrind,
   unless --no-callgrind): a load-independent measure of connector-file's overhead.
6. Writes the tables to --results (markdown) and prints them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("HOME", "/tmp")) / ".cache" / "arrow-connectors"
VENV = CACHE / "peers" / "venv"
PY_PACKAGES = ["pyarrow", "duckdb", "fastavro"]


def ensure_venv() -> None:
    """Re-run this script under the cached venv, with the packages it needs."""
    venv_python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() != VENV.resolve():
        if not venv_python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        os.execv(str(venv_python), [str(venv_python), *sys.argv])
    missing = []
    for mod in PY_PACKAGES:
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        print(f"compare: pip install {' '.join(missing)}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *missing],
            check=True,
        )


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or CACHE / "target-bench")


def build() -> Path:
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir()))
    print("compare: cargo build --release -p benches --bins", file=sys.stderr)
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "benches", "--bins"], cwd=ROOT, env=env, check=True
    )
    return target_dir() / "release"


def rust_read(bins: Path, reader: str, path: Path) -> tuple[int, float]:
    out = subprocess.run(
        [str(bins / "read_file"), reader, str(path)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"read_file {reader} {path.name}: {out.stderr.strip()}")
    m = re.search(r"rows=(\d+) seconds=([0-9.]+)", out.stdout)
    if not m:
        raise RuntimeError(f"read_file {reader}: unexpected output {out.stdout!r}")
    return int(m.group(1)), float(m.group(2))


def instructions(bins: Path, files: dict, out: Path, sample_rows: int) -> list[dict]:
    """Instructions executed by each Rust reader on a sample of each file (valgrind's callgrind):
    unlike times, these do not move with the machine's load, so small overheads show."""
    import shutil
    import tempfile

    if shutil.which("valgrind") is None:
        print("compare: valgrind not found; instruction counts skipped", file=sys.stderr)
        return []
    import pyarrow.parquet as pq

    samples = {}
    for fmt, path in files.items():
        sample = out / f"sample-{sample_rows}.{fmt}"
        if not sample.exists():
            if fmt == "csv":
                with path.open("rb") as src, sample.open("wb") as dst:
                    for i, line in enumerate(src):
                        if i > sample_rows:
                            break
                        dst.write(line)
            else:
                table = pq.read_table(path).slice(0, sample_rows)
                pq.write_table(table, sample, compression="snappy", row_group_size=1_000_000)
        samples[fmt] = sample
    rows = []
    for fmt, sample in samples.items():
        counts = {}
        for reader in ("arrow", "ours"):
            with tempfile.TemporaryDirectory() as tmp:
                run = subprocess.run(
                    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                     str(bins / "read_file"), reader, str(sample)],
                    capture_output=True, text=True, check=False,
                )
            m = re.search(r"Collected : (\d+)", run.stderr)
            if run.returncode != 0 or not m:
                raise RuntimeError(f"callgrind {reader} {sample.name}: {run.stderr[-500:]}")
            counts[reader] = int(m.group(1))
        rows.append({"format": fmt, "rows": sample_rows, **counts})
        print(f"compare: {fmt} instructions ours/arrow-rs {counts['ours'] / counts['arrow']:.3f}", file=sys.stderr)
    return rows


def timed(fn) -> tuple[int, float]:
    t = time.perf_counter()
    rows = fn()
    return rows, time.perf_counter() - t


def readers(bins: Path, fmt: str):
    import duckdb
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    def pyarrow_read(path: Path, threads: bool) -> int:
        if fmt == "parquet":
            return pq.read_table(path, use_threads=threads).num_rows
        opts = pacsv.ReadOptions(use_threads=threads)
        return pacsv.read_csv(path, read_options=opts).num_rows

    def duck_read(path: Path, threads: int) -> int:
        con = duckdb.connect()
        con.execute(f"SET threads TO {threads}")
        fn = "read_parquet" if fmt == "parquet" else "read_csv_auto"
        # Materialize every row as an Arrow table (a count(*) could answer from metadata).
        literal = str(path).replace("'", "''")
        rel = con.sql(f"SELECT * FROM {fn}('{literal}')")
        fetch = getattr(rel, "to_arrow_table", None) or rel.arrow  # DuckDB 2 / 1
        table = fetch()
        con.close()
        return table.num_rows

    cpus = os.cpu_count() or 1
    return [
        ("arrow-rs", lambda p: rust_read(bins, "arrow", p)),
        ("connector-file", lambda p: rust_read(bins, "ours", p)),
        (f"pyarrow {pa.__version__}", lambda p: timed(lambda: pyarrow_read(p, True))),
        ("pyarrow, 1 thread", lambda p: timed(lambda: pyarrow_read(p, False))),
        (f"DuckDB {duckdb.__version__}", lambda p: timed(lambda: duck_read(p, cpus))),
        ("DuckDB, 1 thread", lambda p: timed(lambda: duck_read(p, 1))),
    ]


def bench(bins: Path, files: dict[str, Path], rows: int, reps: int) -> list[dict]:
    results = []
    for fmt, path in files.items():
        for name, read in readers(bins, fmt):
            times = []
            error = None
            try:
                got, _ = read(path)  # warm-up (page cache, lazy init)
                if got != rows:
                    raise RuntimeError(f"read {got} rows, expected {rows}")
                for _ in range(reps):
                    got, secs = read(path)
                    if got != rows:
                        raise RuntimeError(f"read {got} rows, expected {rows}")
                    times.append(secs)
            except Exception as e:  # noqa: BLE001 - reported in the table
                error = str(e).splitlines()[0][:120]
            med = statistics.median(times) if times else None
            results.append({"format": fmt, "reader": name, "median": med, "times": times, "error": error})
            shown = f"{med:.3f} s" if med is not None else f"error: {error}"
            print(f"compare: {fmt:<8} {name:<22} {shown}", file=sys.stderr)
    return results


def norm(v):
    """A comparable form of a value, whichever format and reader it came through."""
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float, decimal.Decimal)):
        return round(float(v), 4)
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time(0) else v.isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, str):
        if re.fullmatch(r"-?\d+(\.\d+)?", v):
            return round(float(v), 4)
        return v
    return str(v)


def interop(out: Path, reference: Path, sample_rows: int) -> list[dict]:
    """pyarrow / fastavro read the files connector-file wrote; compare with the reference."""
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    ref = pq.read_table(reference).slice(0, sample_rows).to_pylist()
    picks = sorted({0, 1, len(ref) // 3, len(ref) // 2, len(ref) - 1}) if ref else []

    def read_avro(path: Path) -> list[dict]:
        import fastavro

        with open(path, "rb") as f:
            return list(fastavro.reader(f))

    checks = [
        ("Parquet", "lineitem.parquet", "pyarrow.parquet", lambda p: pq.read_table(p).to_pylist()),
        ("CSV", "lineitem.csv", "pyarrow.csv", lambda p: pacsv.read_csv(p).to_pylist()),
        ("JSON (NDJSON)", "lineitem.json", "pyarrow.json", lambda p: pajson.read_json(p).to_pylist()),
        ("Avro", "lineitem.avro", "fastavro", read_avro),
    ]
    results = []
    for label, name, tool, read in checks:
        path = out / "ours" / name
        row = {"format": label, "tool": tool, "rows": None, "expected": len(ref), "values": "-", "error": None}
        try:
            if not path.exists():
                raise RuntimeError("connector-file did not write it (see gen_tpch output)")
            got = read(path)
            row["rows"] = len(got)
            bad = []
            for i in picks:
                if i >= len(got):
                    bad.append(f"row {i} missing")
                    continue
                for col, want in ref[i].items():
                    have = got[i].get(col, "<missing>")
                    if norm(have) != norm(want):
                        bad.append(f"row {i} {col}: {have!r} != {want!r}")
            row["values"] = "same" if not bad else "; ".join(bad[:3])
        except Exception as e:  # noqa: BLE001 - reported in the table
            row["error"] = str(e).splitlines()[0][:160]
        results.append(row)
        print(f"compare: interop {label:<14} {row}", file=sys.stderr)
    return results


def markdown(args, rows: int, files: dict[str, Path], results: list[dict], checks: list[dict], ours_rows: int, counts: list[dict]) -> str:
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        "# File read benchmarks",
        "",
        "Generated by `python3 benches/compare_files.py "
        f"--sf {args.sf} --reps {args.reps}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"({os.cpu_count()} cores, {cpu}; load average at the end {load}; release build).",
        "",
        f"Input: TPC-H `lineitem`, SF {args.sf}: {rows:,} rows, 16 columns (integers, decimals, dates, strings), "
        "written once by arrow-rs's own writers: "
        + ", ".join(f"{fmt} {files[fmt].stat().st_size / 1e6:,.0f} MB" for fmt in files)
        + " (Parquet: snappy, row groups of 1M rows). Every reader materializes every row and column as Arrow "
        f"batches. One warm-up read, then {args.reps} timed reads; the median is shown. "
        "arrow-rs and connector-file are timed inside their process (start-up excluded); pyarrow and DuckDB in "
        "the Python process. pyarrow and DuckDB use every core by default; their one-thread rows compare "
        "like with like (the arrow-rs baseline and connector-file read one file on one partition).",
        "",
        "Ratio = median time / arrow-rs median time on the same file (lower is faster; 1.00x = as fast as arrow-rs).",
        "",
        "| format | reader | median s | rows/s | ratio vs arrow-rs |",
        "|---|---|---:|---:|---:|",
    ]
    for fmt in files:
        base = next((r["median"] for r in results if r["format"] == fmt and r["reader"] == "arrow-rs"), None)
        for r in (r for r in results if r["format"] == fmt):
            if r["median"] is None:
                lines.append(f"| {fmt} | {r['reader']} | error | | {r['error']} |")
                continue
            ratio = f"{r['median'] / base:.2f}x" if base else "-"
            lines.append(
                f"| {fmt} | {r['reader']} | {r['median']:.3f} | {rows / r['median']:,.0f} | {ratio} |"
            )
    if counts:
        lines += [
            "",
            "## Instructions (load-independent)",
            "",
            f"Instructions executed reading the first {counts[0]['rows']:,} rows of each file (valgrind "
            "`--tool=callgrind` on the `read_file` bin; start-up included, the same for both). Wall-clock "
            "ratios on a shared 2-core machine move by ±10 % between runs; instruction counts repeat exactly.",
            "",
            "| format | arrow-rs | connector-file | ratio |",
            "|---|---:|---:|---:|",
        ]
        for c in counts:
            lines.append(
                f"| {c['format']} | {c['arrow']:,} | {c['ours']:,} | {c['ours'] / c['arrow']:.3f}x |"
            )
    lines += [
        "",
        "## Files written by connector-file, read by other tools",
        "",
        f"The first {ours_rows:,} rows, written through `connector_file::FileSink` and read back by pyarrow "
        "(fastavro for Avro). Values are compared with the arrow-rs reference for rows 0, 1, 1/3, 1/2 and last, "
        "every column (numbers compared as numbers, dates as ISO dates).",
        "",
        "| format | read by | rows | expected | sampled values |",
        "|---|---|---:|---:|---|",
    ]
    for c in checks:
        if c["error"]:
            lines.append(f"| {c['format']} | {c['tool']} | error | {c['expected']:,} | {c['error']} |")
        else:
            lines.append(f"| {c['format']} | {c['tool']} | {c['rows']:,} | {c['expected']:,} | {c['values']} |")
    lines += [
        "",
        "Reproduce: `python3 benches/compare_files.py --sf 1` (installs pyarrow, duckdb and fastavro into "
        "`$HOME/.cache/arrow-connectors/peers/venv`). Criterion, Rust readers only: "
        "`cargo bench -p benches --bench file_read` (`BENCH_SF`, default 0.1).",
        "",
        f"Python {platform.python_version()}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ensure_venv()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sf", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--ours-rows", type=int, default=100_000)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--results", type=Path, default=ROOT / "benches" / "RESULTS.md")
    p.add_argument("--skip-build", action="store_true")
    p.add_argument("--callgrind-rows", type=int, default=500_000)
    p.add_argument("--no-callgrind", action="store_true")
    args = p.parse_args()
    out = args.out or target_dir() / f"tpch-sf{args.sf:g}"

    bins = target_dir() / "release" if args.skip_build else build()
    t = time.perf_counter()
    gen = subprocess.run(
        [str(bins / "gen_tpch"), "--sf", str(args.sf), "--out", str(out), "--ours-rows", str(args.ours_rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(gen.stderr)
    if gen.returncode != 0:
        print("compare: gen_tpch failed", file=sys.stderr)
        return 1
    rows = int(gen.stdout.strip().splitlines()[-1])
    print(f"compare: {rows:,} rows ready in {time.perf_counter() - t:.1f} s under {out}", file=sys.stderr)

    files = {"parquet": out / "lineitem.parquet", "csv": out / "lineitem.csv"}
    results = bench(bins, files, rows, args.reps)
    checks = interop(out, files["parquet"], min(args.ours_rows, rows))
    counts = [] if args.no_callgrind else instructions(bins, files, out, min(args.callgrind_rows, rows))
    md = markdown(args, rows, files, results, checks, min(args.ours_rows, rows), counts)
    args.results.write_text(md)
    print(md)
    failed = any(r["error"] for r in results) or any(
        c["error"] or c["values"] != "same" or c["rows"] != c["expected"] for c in checks
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
