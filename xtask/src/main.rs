//! Project automation for the arrow-connectors workspace.
//!
//! - `cargo xtask test [-- <cargo test args>]`: bring up every test peer (install what is
//!   missing into `$HOME/.cache/arrow-connectors/peers`), then run `cargo fmt --check`,
//!   `cargo clippy -D warnings` and `cargo test` with the peers' endpoints in the environment;
//!   stop the first failing step with its exit code; stop the peers this run started, also on
//!   failure and on Ctrl-C / SIGTERM.
//! - `cargo xtask peers up`: start the peers and leave them running; prints `export` lines.
//! - `cargo xtask peers down`: stop what `peers up` started.
//! - `cargo xtask peers install` / `peers status` / `peers env`.

mod peers;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};

use peers::StartedSet;

/// An error that ends the command with a message.
#[derive(Debug)]
pub(crate) struct Error {
    message: String,
    code: u8,
}

impl Error {
    /// An error with exit code 1.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> Self {
        Self::new(format!("{}: {e}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Result of an xtask step.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// The workspace root (the parent of this crate's folder).
pub(crate) fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [-- ARGS]     start the test peers, then cargo fmt --check, clippy -D warnings and
                     cargo test --workspace --all-features [ARGS]; stops the peers it started
  peers up           start the test peers and leave them running; prints the env exports
  peers down         stop the peers `peers up` started
  peers install      install the peers' programs into the cache without starting them
  peers status       show which peers answer
  peers env          print the env exports the tests read
";

/// The pid of the cargo step running now, for the signal handler.
type Current = Arc<Mutex<Option<u32>>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["test", rest @ ..] => test(rest),
        ["peers", "up"] => peers_up(),
        ["peers", "down"] => {
            peers::down();
            Ok(())
        }
        ["peers", "install"] => peers::install_all(),
        ["peers", "status"] => {
            peers::status();
            Ok(())
        }
        ["peers", "env"] => {
            print_exports();
            Ok(())
        }
        ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(Error {
            message: format!("unknown command {args:?}\n\n{USAGE}"),
            code: 2,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn print_exports() {
    for (k, v) in peers::exports() {
        println!("export {k}={v}");
    }
}

fn peers_up() -> Result<()> {
    // Left running on purpose; on failure, stop what this call started.
    let started = StartedSet::default();
    if let Err(e) = peers::up(&started) {
        started.stop_all(true);
        return Err(e);
    }
    eprintln!("xtask: peers are running; stop them with `cargo xtask peers down`");
    print_exports();
    Ok(())
}

/// Stops the peers this run started when dropped (success, error or early return). Quiet on
/// success, so the run's output ends with cargo test's summary lines.
struct StopOnDrop {
    started: StartedSet,
    ok: bool,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.started.stop_all(!self.ok);
    }
}

fn test(extra: &[&str]) -> Result<()> {
    let extra = match extra {
        ["--", rest @ ..] => rest,
        other => other,
    };
    let started = StartedSet::default();
    let current: Current = Arc::default();
    {
        let started = started.clone();
        let current = current.clone();
        ctrlc::set_handler(move || {
            eprintln!("\nxtask: interrupted; stopping the peers this run started");
            if let Some(pid) = *current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            started.stop_all(true);
            std::process::exit(130);
        })
        .map_err(|e| Error::new(format!("cannot install the signal handler: {e}")))?;
    }
    let mut guard = StopOnDrop {
        started: started.clone(),
        ok: false,
    };
    peers::up(&started)?;

    let mut test_args = vec!["test", "--workspace", "--all-features"];
    test_args.extend_from_slice(extra);
    let steps: [&[&str]; 3] = [
        &["fmt", "--all", "--", "--check"],
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
        &test_args,
    ];
    for step in steps {
        cargo(step, &current)?;
    }
    guard.ok = true;
    Ok(())
}

/// Run one cargo step with the peers' env, streaming its output.
fn cargo(args: &[&str], current: &Current) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: $ cargo {}", args.join(" "));
    let mut child = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .envs(peers::exports())
        .spawn()
        .map_err(|e| Error::new(format!("cannot run cargo: {e}")))?;
    *current
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(child.id());
    let status = child
        .wait()
        .map_err(|e| Error::new(format!("waiting for cargo: {e}")));
    *current
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    let status = status?;
    if status.success() {
        Ok(())
    } else {
        Err(Error {
            message: format!("`cargo {}` failed ({status})", args.join(" ")),
            code: status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .filter(|&c| c != 0)
                .unwrap_or(1),
        })
    }
}
