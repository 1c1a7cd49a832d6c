//! Support for `tests/spawn.rs` (included there with `#[path]`): GETs and load through
//! the service, the programs a spawned service runs (found or skipped loudly,
//! `FCGI_INTEROP=require` fails), the fixture scripts they serve, a process-group
//! census from /proc, and a capture of the crate's log lines.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use tower::ServiceExt;
use tower_fastcgi::FcgiService;

use crate::support::{Policy, Program, policy, programs};

/// `program`'s executable, or `None` after a loud skip message (a failure under
/// `FCGI_INTEROP=require`).
pub fn program_or_skip(program: Program) -> Option<PathBuf> {
    match (policy(), programs::locate(program)) {
        (Policy::SkipAll, _) => skip(program.name(), "FCGI_INTEROP=skip"),
        (_, Ok(path)) => Some(path),
        (Policy::Require, Err(why)) => {
            panic!(
                "FCGI_INTEROP=require, but {} is missing: {why}",
                program.name()
            )
        }
        (_, Err(why)) => skip(program.name(), &why),
    }
}

/// `go`, or `None` after a loud skip message (`FCGI_INTEROP=require` fails).
pub fn go_or_skip() -> Option<PathBuf> {
    // FCGI_TEST_PATH (a simulated machine without backends) hides it like the others.
    let dirs: Vec<PathBuf> = match std::env::var_os("FCGI_TEST_PATH") {
        Some(dirs) => std::env::split_paths(&dirs).collect(),
        None => ["/usr/bin", "/usr/local/go/bin", "/usr/lib/go/bin"]
            .iter()
            .map(PathBuf::from)
            .collect(),
    };
    let found = dirs.iter().map(|d| d.join("go")).find(|p| p.is_file());
    match (policy(), found) {
        (Policy::SkipAll, _) => skip("go", "FCGI_INTEROP=skip"),
        (_, Some(go)) => Some(go),
        (Policy::Require, None) => {
            panic!("FCGI_INTEROP=require, but go is not installed (apt-get install golang-go)")
        }
        (_, None) => skip("go", "go is not installed (apt-get install golang-go)"),
    }
}

fn skip<T>(name: &str, why: &str) -> Option<T> {
    let current = std::thread::current();
    let test = current.name().unwrap_or("(unnamed test)");
    let line = "#".repeat(78);
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "\n{line}\n## SKIPPED spawn test {test} [{name}]: {why}\n\
         ## run scripts/test.sh to install it (FCGI_INTEROP=require makes this fail)\n{line}\n"
    );
    None
}

/// GET `target` through the service: the status and the body (or the body's error).
pub async fn get(svc: &FcgiService, target: &str) -> (StatusCode, Result<String, String>) {
    let req = Request::get(target)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let res = match svc.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let status = res.status();
    let body = res.into_body().collect().await;
    let body = body
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .map_err(|e| e.to_string());
    (status, body)
}

/// The pid a fixture answered with, or a panic naming what came instead.
pub async fn pid(svc: &FcgiService, target: &str) -> u32 {
    match get(svc, target).await {
        (StatusCode::OK, Ok(body)) => body
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a pid: {body:?}")),
        other => panic!("GET {target}: {other:?}"),
    }
}

/// Sends GETs `concurrency` at a time until `want` distinct pids answered (or 400
/// requests went by); the pids seen.
pub async fn distinct_pids(svc: &FcgiService, target: &str, want: usize) -> BTreeSet<u32> {
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        let round: Vec<_> = (0..want.max(2))
            .map(|_| {
                let svc = svc.clone();
                let target = target.to_owned();
                tokio::spawn(async move { pid(&svc, &target).await })
            })
            .collect();
        for task in round {
            seen.insert(task.await.expect("a request task"));
        }
        if seen.len() >= want {
            break;
        }
    }
    seen
}

/// Waits (up to `limit`) for `done`; whether it happened.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Runs `total` GETs of `target`, `concurrency` at a time, calling `during` once after
/// `at` of them; the failures (status and body) and every pid that answered.
pub async fn load(
    svc: &FcgiService,
    target: &'static str,
    total: usize,
    concurrency: usize,
) -> (Vec<String>, BTreeSet<u32>) {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pids = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (svc, next) = (svc.clone(), Arc::clone(&next));
            let (failures, pids) = (Arc::clone(&failures), Arc::clone(&pids));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    match get(&svc, target).await {
                        (StatusCode::OK, Ok(body)) if body.trim().parse::<u32>().is_ok() => {
                            pids.lock().unwrap().insert(body.trim().parse().unwrap());
                        }
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("a load worker");
    }
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    let pids = std::mem::take(&mut *pids.lock().unwrap());
    (failures, pids)
}

/// A private directory with the fixture scripts.
pub struct Fixtures {
    pub dir: tempfile::TempDir,
}

impl Fixtures {
    pub fn new() -> Fixtures {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fixtures = Fixtures { dir };
        fixtures.write(
            "pid.php",
            "<?php\nheader('Content-Type: text/plain');\necho getmypid();\n",
        );
        // fcgiwrap forks the script: its parent is the fcgiwrap process.
        fixtures.write_executable(
            "pid.cgi",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$PPID\"\n",
        );
        fixtures.write(
            "fd0_app.py",
            "import os\n\
             from flup.server.fcgi import WSGIServer\n\
             def app(environ, start_response):\n\
             \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
             \x20   return [str(os.getpid()).encode()]\n\
             # No bind address: flup serves the socket it was given as fd 0.\n\
             WSGIServer(app, bindAddress=None).run()\n",
        );
        fixtures
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, text).expect("a fixture file");
        path
    }

    pub fn write_executable(&self, name: &str, text: &str) -> PathBuf {
        let path = self.write(name, text);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// Builds `fcgi.Serve(nil, h)` (a handler answering its pid) with `go`.
    pub fn build_go_app(&self, go: &Path) -> PathBuf {
        self.write(
            "main.go",
            "package main\n\n\
             import (\n\t\"fmt\"\n\t\"net/http\"\n\t\"net/http/fcgi\"\n\t\"os\"\n)\n\n\
             func main() {\n\
             \t// nil: serve the listener passed as fd 0.\n\
             \terr := fcgi.Serve(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {\n\
             \t\tw.Header().Set(\"Content-Type\", \"text/plain\")\n\
             \t\tfmt.Fprint(w, os.Getpid())\n\
             \t}))\n\
             \tif err != nil {\n\t\tfmt.Fprintln(os.Stderr, err)\n\t\tos.Exit(1)\n\t}\n}\n",
        );
        let out = self.dir.path().join("go-app");
        let cache = std::env::temp_dir().join("tower-fastcgi-test-gocache");
        let status = Command::new(go)
            .current_dir(self.dir.path())
            .args(["build", "-o"])
            .arg(&out)
            .arg("main.go")
            .env("GOCACHE", &cache)
            .env("GOPATH", cache.join("gopath"))
            .env("HOME", self.dir.path())
            // Never download a toolchain: the installed one is the one under test.
            .env("GOTOOLCHAIN", "local")
            .status()
            .expect("go runs");
        assert!(status.success(), "go build failed: {status}");
        out
    }
}

/// The process group of `pid`, from /proc.
pub fn group_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// The pids of live processes (zombies excluded) whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .collect()
}

/// Everything the crate logged since [`capture_logs`], for assertions (which print it).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&capture().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

fn capture() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(Default::default)
}

/// Installs the capturing subscriber once per test binary.
pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("tower_fastcgi=info")
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
}

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        capture()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
