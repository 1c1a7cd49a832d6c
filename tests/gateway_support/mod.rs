//! The real gateway binary (`examples/gateway.rs`) as a child process, for the tests of
//! what only the whole program does: signals, exit codes, flags.
//!
//! `cargo test` does not build examples for `--test NAME`, and a stale binary would test
//! old code, so the first use in a test binary runs `cargo build --example gateway`
//! (a no-op when it is up to date) into the same target directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// The gateway executable, built on first use.
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/debug/deps/<test binary> → target/debug
            let exe = std::env::current_exe().expect("the test binary's path");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("the test binary lives in target/<profile>/deps")
                .to_path_buf();
            let target_dir = profile_dir.parent().expect("target/<profile>");
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .args([
                    "build",
                    "--quiet",
                    "--example",
                    "gateway",
                    "--manifest-path",
                ])
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
                .arg("--target-dir")
                .arg(target_dir);
            // What `cargo test` sets for the test binary describes this test, not the
            // build: ring's build script watches CARGO_MANIFEST_DIR, and inheriting it
            // would rebuild ring and everything above it on every run.
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy().into_owned();
                let per_crate = ["CARGO_MANIFEST", "CARGO_PKG_", "CARGO_CRATE", "CARGO_BIN"]
                    .iter()
                    .any(|prefix| name.starts_with(prefix));
                if per_crate || name == "CARGO_PRIMARY_PACKAGE" || name == "CARGO_TARGET_TMPDIR" {
                    cargo.env_remove(name);
                }
            }
            if profile_dir.ends_with("release") {
                cargo.arg("--release");
            }
            let status = cargo.status().expect("cargo runs");
            assert!(status.success(), "cargo build --example gateway: {status}");
            profile_dir.join("examples").join("gateway")
        })
        .clone()
}

/// A `--php` mount of `php`'s document root at `/` (php must listen on TCP).
pub fn php_mount(php: &crate::support::RunningBackend) -> String {
    match php.addr() {
        crate::support::Addr::Tcp(addr) => {
            format!("/=tcp://{addr},root={}", php.document_root().display())
        }
        other => panic!("expected a TCP backend, got {other:?}"),
    }
}

/// A running gateway; dropping it kills it.
pub struct Gateway {
    child: Child,
    addr: SocketAddr,
    /// Everything it wrote to stderr so far (its log).
    log: Arc<Mutex<String>>,
}

impl Gateway {
    /// Starts the gateway with `args` (a `--listen 127.0.0.1:0` is added) and waits until
    /// it logs the address it listens on.
    pub fn start(args: &[&str]) -> Gateway {
        let mut child = Command::new(binary())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the gateway starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Logged first: whoever gets the address may read the log at once.
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(addr) = listening_addr(&line) {
                    let _ = addr_tx.send(addr);
                }
            }
        });
        let mut gateway = Gateway {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => gateway.addr = addr,
            Err(_) => panic!(
                "the gateway did not say where it listens; its log:\n{}",
                gateway.log()
            ),
        }
        gateway
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM, as a service manager does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the gateway's "listening on http://ADDR" (or https://) log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    let rest = rest.split("://").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}
