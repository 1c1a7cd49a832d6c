//! Go's `net/http/fcgi` as a real multiplexing backend: `tests/fixtures/go_fcgi.go`, built
//! once per source version with the installed `go` (cached under the temp directory), run
//! in a process group of its own on a Unix socket in a fresh temp dir (or on 127.0.0.1).
//!
//! Routes: `/slow?ms=N&tag=T` (answers `slow tag=T ms=N seq=S pid=P` after N ms), `/echo`
//! (the body back, read to the end first), `/env` (the CGI environment as `NAME=value`
//! lines) and `/big?bytes=N` (N bytes of [`stream_pattern`](crate::support::stream_pattern)).
//! Counters come out of band, from a second Unix socket, never through FastCGI:
//! [`GoFcgi::counters`].
//!
//! Go 1.19's quirks, pinned by `tests/mux_backends.rs`: it answers FCGI_GET_VALUES with
//! `FCGI_MPXS_CONNS=1` only (whatever was asked) and follows that record with a second,
//! empty GET_VALUES_RESULT; FCGI_ABORT_REQUEST never cancels the handler's context (a
//! handler reading its body sees an error: [`GoCounters::body_errors`]), and an abort that
//! arrives after the request's empty STDIN is ignored. Aborts are best observed at the
//! record level: put a [`Tap`](crate::support::record_tap::Tap) in front.
//!
//! ```ignore
//! let Some(go) = support::backends::go_fcgi::GoFcgi::start_or_skip() else { return };
//! let svc = FcgiService::builder().backend(go.fcgi_backend()).build();
//! // ... 64 concurrent GET /slow?ms=300 ...
//! let counters = go.counters();
//! assert!(counters.peak >= 64 && counters.accepted <= 4, "{counters:?}");
//! ```

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::{Addr, StartError};
use crate::support::process::{self, ProcessGroup};
use crate::support::{Policy, policy, sha256_hex, skip_loudly};

const SOURCE: &str = include_str!("../../fixtures/go_fcgi.go");

/// How long the program gets to build (first run only) and then to listen.
const STARTUP: Duration = Duration::from_secs(60);

/// What the Go backend counted so far (read with [`GoFcgi::counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GoCounters {
    /// FastCGI connections accepted since start.
    pub accepted: u64,
    /// FastCGI connections open now.
    pub open: u64,
    /// Requests whose handler is running now.
    pub inflight: u64,
    /// The most handlers that ran at once (since start or [`GoFcgi::reset_peak`]).
    pub peak: u64,
    /// Handlers that returned.
    pub completed: u64,
    /// `/echo` bodies whose reading failed: how an FCGI_ABORT_REQUEST during STDIN shows.
    pub body_errors: u64,
}

/// A running Go `net/http/fcgi` backend; dropping it stops the process.
pub struct GoFcgi {
    addr: Addr,
    stats: PathBuf,
    log: PathBuf,
    group: Option<ProcessGroup>,
    // Dropped last: the process is gone before its directory is removed.
    dir: tempfile::TempDir,
}

impl fmt::Debug for GoFcgi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoFcgi")
            .field("addr", &self.addr)
            .field("pid", &self.pid())
            .finish()
    }
}

impl GoFcgi {
    /// Starts it on a Unix socket, or returns `None` after a loud skip when `go` is missing
    /// (`FCGI_INTEROP=require` fails instead). A build or start failure always panics.
    pub fn start_or_skip() -> Option<GoFcgi> {
        Self::or_skip(false)
    }

    /// [`GoFcgi::start_or_skip`] on 127.0.0.1 (a port the program picks itself).
    pub fn start_tcp_or_skip() -> Option<GoFcgi> {
        Self::or_skip(true)
    }

    fn or_skip(tcp: bool) -> Option<GoFcgi> {
        if policy() == Policy::SkipAll {
            skip_loudly("go net/http/fcgi", "FCGI_INTEROP=skip");
            return None;
        }
        match GoFcgi::start(tcp) {
            Ok(go) => Some(go),
            Err(StartError::Missing(why)) if policy() == Policy::Require => {
                panic!("FCGI_INTEROP=require, but go net/http/fcgi cannot run: {why}")
            }
            Err(StartError::Missing(why)) => {
                skip_loudly("go net/http/fcgi", &why);
                None
            }
            Err(StartError::Failed(why)) => panic!("go net/http/fcgi did not start:\n{why}"),
        }
    }

    /// Builds (if needed) and starts the program; on TCP when `tcp`, else a Unix socket.
    pub fn start(tcp: bool) -> Result<GoFcgi, StartError> {
        let go = locate_go().map_err(StartError::Missing)?;
        let binary = built(&go).map_err(StartError::Failed)?;
        let dir = tempfile::Builder::new()
            .prefix("fcgi-go-")
            .tempdir()
            .map_err(|e| StartError::Failed(format!("cannot create a temp dir: {e}")))?;
        let listen = if tcp {
            "tcp:127.0.0.1:0".to_owned()
        } else {
            format!("unix:{}", dir.path().join("go.sock").display())
        };
        let stats = dir.path().join("stats.sock");
        let addr_file = dir.path().join("addr");
        let log = dir.path().join("stderr.log");
        let mut command = Command::new(&binary);
        command
            .arg("-listen")
            .arg(&listen)
            .arg("-stats")
            .arg(&stats)
            .arg("-addr-file")
            .arg(&addr_file);
        let line = process::isolate(&mut command, dir.path(), &[]);
        let mut group = ProcessGroup::spawn(&mut command, &log).map_err(StartError::Failed)?;
        let deadline = Instant::now() + STARTUP;
        let addr = loop {
            if let Ok(text) = fs::read_to_string(&addr_file) {
                break parse_addr(&text).map_err(StartError::Failed)?;
            }
            let failed = if group.leader_exited() {
                Some("exited before listening")
            } else if Instant::now() >= deadline {
                Some("did not listen in time")
            } else {
                None
            };
            if let Some(why) = failed {
                group.stop();
                let log = fs::read_to_string(&log).unwrap_or_default();
                return Err(StartError::Failed(format!("{line}: {why}\n{log}")));
            }
            thread::sleep(Duration::from_millis(10));
        };
        Ok(GoFcgi {
            addr,
            stats,
            log,
            group: Some(group),
            dir,
        })
    }

    /// Where it serves FastCGI.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The same address as the crate's backend type.
    pub fn fcgi_backend(&self) -> tower_fastcgi::Backend {
        self.addr.to_backend()
    }

    /// The program's process id.
    pub fn pid(&self) -> Option<u32> {
        self.group.as_ref().and_then(ProcessGroup::pid)
    }

    /// The private temp dir (sockets, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the program wrote to stderr.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The counters now. Panics if the stats socket does not answer (the program died).
    pub fn counters(&self) -> GoCounters {
        self.ask("get")
    }

    /// Resets the peak to the requests in flight now; returns the counters before.
    pub fn reset_peak(&self) -> GoCounters {
        self.ask("reset")
    }

    /// Polls [`GoFcgi::counters`] until `done` holds or `timeout` passes; the last reading.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&GoCounters) -> bool) -> GoCounters {
        let deadline = Instant::now() + timeout;
        loop {
            let counters = self.counters();
            if done(&counters) || Instant::now() >= deadline {
                return counters;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn ask(&self, command: &str) -> GoCounters {
        let answer = (|| -> std::io::Result<String> {
            let mut conn = UnixStream::connect(&self.stats)?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            conn.write_all(format!("{command}\n").as_bytes())?;
            let mut text = String::new();
            conn.read_to_string(&mut text)?;
            Ok(text)
        })();
        match answer {
            Ok(text) => parse_counters(&text)
                .unwrap_or_else(|why| panic!("go stats socket: {why}\n{}", self.log())),
            Err(e) => panic!("go stats socket: {e}\n{}", self.log()),
        }
    }
}

impl Drop for GoFcgi {
    fn drop(&mut self) {
        if let Some(mut group) = self.group.take() {
            group.stop();
        }
    }
}

fn parse_addr(text: &str) -> Result<Addr, String> {
    match text.trim().split_once(':') {
        Some(("unix", path)) => Ok(Addr::Unix(PathBuf::from(path))),
        Some(("tcp", addr)) => addr
            .parse::<SocketAddr>()
            .map(Addr::Tcp)
            .map_err(|e| format!("bad address {text:?}: {e}")),
        _ => Err(format!("bad address {text:?}")),
    }
}

fn parse_counters(text: &str) -> Result<GoCounters, String> {
    let mut counters = GoCounters::default();
    for field in text.split_whitespace() {
        let (name, value) = field
            .split_once('=')
            .ok_or_else(|| format!("bad field {field:?} in {text:?}"))?;
        let value: u64 = value
            .parse()
            .map_err(|_| format!("bad number in {field:?}"))?;
        match name {
            "accepted" => counters.accepted = value,
            "open" => counters.open = value,
            "inflight" => counters.inflight = value,
            "peak" => counters.peak = value,
            "completed" => counters.completed = value,
            "body_errors" => counters.body_errors = value,
            _ => {}
        }
    }
    if text.trim().is_empty() {
        return Err("empty answer".into());
    }
    Ok(counters)
}

/// `go`, searched like `tests/support/spawn.rs` does (`FCGI_TEST_PATH` hides it too).
fn locate_go() -> Result<PathBuf, String> {
    let dirs: Vec<PathBuf> = match std::env::var_os("FCGI_TEST_PATH") {
        Some(dirs) => std::env::split_paths(&dirs).collect(),
        None => ["/usr/bin", "/usr/local/go/bin", "/usr/lib/go/bin"]
            .iter()
            .map(PathBuf::from)
            .collect(),
    };
    dirs.iter()
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
        .ok_or_else(|| "go is not installed (apt-get install golang-go)".to_owned())
}

/// The binary for the current source: built once per source version and kept in the temp
/// directory, so later test runs (and other test binaries) start at once. Built under a
/// private name and renamed into place, so concurrent builders never see half a file.
fn built(go: &Path) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let version = sha256_hex(SOURCE.as_bytes());
            let cache = std::env::temp_dir().join("tower-fastcgi-test-gocache");
            let dir = cache.join("go-fcgi");
            let binary = dir.join(format!("go_fcgi-{}", &version[..16]));
            if binary.is_file() {
                return Ok(binary);
            }
            let work = tempfile::Builder::new()
                .prefix("go-fcgi-build-")
                .tempdir()
                .map_err(|e| format!("cannot create a build dir: {e}"))?;
            fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            fs::write(work.path().join("main.go"), SOURCE)
                .map_err(|e| format!("cannot write main.go: {e}"))?;
            let out = work.path().join("go_fcgi");
            let output = Command::new(go)
                .current_dir(work.path())
                .args(["build", "-o"])
                .arg(&out)
                .arg("main.go")
                .env("GOCACHE", &cache)
                .env("GOPATH", cache.join("gopath"))
                .env("HOME", work.path())
                // Never download a toolchain: the installed one is the one under test.
                .env("GOTOOLCHAIN", "local")
                .output()
                .map_err(|e| format!("cannot run {}: {e}", go.display()))?;
            if !output.status.success() {
                return Err(format!(
                    "go build failed ({}):\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            // Copied next to its final name first: a rename within one directory is atomic.
            let staged = dir.join(format!("go_fcgi-{}.{}", &version[..16], std::process::id()));
            fs::copy(&out, &staged).map_err(|e| format!("cannot stage the binary: {e}"))?;
            fs::rename(&staged, &binary).map_err(|e| format!("cannot install the binary: {e}"))?;
            Ok(binary)
        })
        .clone()
}
