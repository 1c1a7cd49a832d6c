//! Real FastCGI backends (php-fpm, php-cgi, flup, fcgiwrap) started as child processes,
//! one module per program for its configuration and command line; and Go's
//! `net/http/fcgi` ([`GoFcgi`], a multiplexing backend with counters of its own).
//!
//! Every [`RunningBackend`] gets a fresh temporary directory holding its configuration, its
//! logs, its Unix socket (if any) and a document root with copies of `tests/fixtures`. It
//! listens on 127.0.0.1 (a free port) or on a Unix socket in that directory, runs in a
//! process group of its own with a clean environment, and the whole group is stopped when
//! the value is dropped, also while a failing test unwinds. (The name is not `Backend`:
//! that is `tower_fastcgi::Backend`, the address a service connects to, which
//! [`RunningBackend::fcgi_backend`] gives.)

mod fcgiwrap;
mod flup;
pub mod go_fcgi;
mod kind;
mod options;
mod php_cgi;
mod php_fpm;
mod requests;
pub mod ruby;
pub mod scgi;
mod uwsgi;

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

pub use go_fcgi::{GoCounters, GoFcgi};
pub use kind::{Addr, Kind};
pub use options::Options;

use super::fixtures;
use super::process::{self, ProcessGroup};
use super::programs::{self, Program};

/// How many times a TCP backend is restarted on a fresh port when its port was taken.
const PORT_ATTEMPTS: usize = 5;

/// Why a backend did not start.
#[derive(Debug)]
pub enum StartError {
    /// The program (or the flup module) is not installed: tests skip unless required.
    Missing(String),
    /// It is installed but did not come up: always a test failure.
    Failed(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Missing(what) => write!(f, "not installed: {what}"),
            StartError::Failed(why) => write!(f, "failed to start: {why}"),
        }
    }
}

/// A running backend program; dropping it stops its whole process group.
pub struct RunningBackend {
    kind: Kind,
    options: Options,
    addr: Addr,
    document_root: PathBuf,
    /// The captured stdout/stderr first, then any log file the program writes itself.
    logs: Vec<PathBuf>,
    startup_time: Duration,
    command_line: String,
    group: Option<ProcessGroup>,
    // Dropped last: the processes are gone before their directory is removed.
    dir: tempfile::TempDir,
}

impl fmt::Debug for RunningBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningBackend")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .field("pid", &self.pid())
            .field("command_line", &self.command_line)
            .finish()
    }
}

/// What a program's module needs to write its configuration and build its command.
struct Launch<'a> {
    /// The backend's private directory (configuration, logs, sockets; also its HOME).
    dir: &'a Path,
    addr: &'a Addr,
    options: &'a Options,
    document_root: &'a Path,
}

/// What one attempt at starting produced.
enum Attempt {
    Ready(ProcessGroup),
    /// The port was taken between choosing it and the backend binding it.
    PortTaken,
    Failed(String),
}

impl RunningBackend {
    /// Starts a backend of `kind` and waits until it accepts connections.
    pub fn start(kind: Kind, options: Options) -> Result<RunningBackend, StartError> {
        let program = programs::locate(kind.program()).map_err(StartError::Missing)?;
        let dir = tempfile::Builder::new()
            .prefix("fcgi-interop-")
            .tempdir()
            .map_err(|e| StartError::Failed(format!("cannot create a temporary directory: {e}")))?;
        let document_root = match &options.document_root {
            Some(root) => root.clone(),
            None => {
                let root = dir.path().join("www");
                fixtures::install(kind.program(), &root).map_err(StartError::Failed)?;
                root
            }
        };

        let mut backend = RunningBackend {
            kind,
            options,
            addr: Addr::Unix(dir.path().join(format!("{}.sock", kind.program().name()))),
            document_root,
            logs: vec![dir.path().join("stderr.log")],
            startup_time: Duration::ZERO,
            command_line: String::new(),
            group: None,
            dir,
        };
        if kind.program() == Program::PhpFpm {
            backend.logs.push(php_fpm::error_log(backend.dir.path()));
        }

        let started = Instant::now();
        for attempt in 1..=PORT_ATTEMPTS {
            if !kind.is_unix() {
                let port = process::free_port().map_err(|e| {
                    StartError::Failed(format!("cannot find a free port on 127.0.0.1: {e}"))
                })?;
                backend.addr = Addr::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
            }
            let mut command = backend.command(&program).map_err(StartError::Failed)?;
            match backend.attempt(&mut command) {
                Attempt::Ready(group) => {
                    backend.group = Some(group);
                    backend.startup_time = started.elapsed();
                    return Ok(backend);
                }
                Attempt::PortTaken if attempt < PORT_ATTEMPTS => continue,
                Attempt::PortTaken => {
                    return Err(StartError::Failed(format!(
                        "{kind}: the chosen port was taken {PORT_ATTEMPTS} times in a row\n{}",
                        backend.log_report()
                    )));
                }
                Attempt::Failed(why) => {
                    return Err(StartError::Failed(format!(
                        "{kind}: {why}\ncommand: {}\n{}",
                        backend.command_line,
                        backend.log_report()
                    )));
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// The kind of backend.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The options it was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Where it listens.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The same address as the crate's backend type.
    pub fn fcgi_backend(&self) -> tower_fastcgi::Backend {
        self.addr.to_backend()
    }

    /// Where the fixture scripts are: the PHP files, the `.cgi` scripts, or `wsgi_app.py`
    /// (a copy of `tests/fixtures`, private to this backend; see [`RunningBackend::write_script`]),
    /// or the directory given as [`Options::document_root`].
    pub fn document_root(&self) -> &Path {
        &self.document_root
    }

    /// The backend's private temporary directory (configuration, logs, sockets).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id of the backend's main process (also its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.group.as_ref().and_then(ProcessGroup::pid)
    }

    /// From spawning (including any port retries) to the first accepted connection.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// The command line it was started with (environment variables first).
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// Everything the backend logged so far: its captured stdout/stderr and, for php-fpm,
    /// the `error_log` file, where `catch_workers_output` puts the workers' stderr.
    pub fn log(&self) -> String {
        let mut out = String::new();
        for path in &self.logs {
            if let Ok(bytes) = fs::read(path) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        out
    }

    /// Waits up to `timeout` until [`RunningBackend::log`] contains `needle` (logs are written
    /// asynchronously by the backend); returns whether it appeared.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes a script into the document root (mode 0755 for `.cgi` and `.sh`) and returns
    /// its path, for tests that need a script of their own. PHP picks it up at once (no
    /// opcache: the backends run without php.ini).
    pub fn write_script(&self, name: &str, contents: &str) -> PathBuf {
        fixtures::write_script(&self.document_root, name, contents)
    }

    /// The request target of a fixture for this backend ([`Kind::target`]).
    pub fn target(&self, fixture: &str) -> String {
        self.kind.target(fixture)
    }

    /// Stops the backend now (Drop does the same).
    pub fn stop(&mut self) {
        // Dropping the group stops it.
        self.group = None;
    }

    /// Kills the whole process group with SIGKILL (master and workers at once, as a
    /// crash or an OOM kill would), without the grace period of [`RunningBackend::stop`].
    pub fn kill(&mut self) {
        if let Some(group) = self.group.as_mut() {
            group.kill();
        }
        self.group = None;
    }

    /// Starts the program again on the same address (after [`RunningBackend::kill`] or
    /// [`RunningBackend::stop`]), and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let program = programs::locate(self.kind.program())?;
        let mut command = self.command(&program)?;
        match self.attempt(&mut command) {
            Attempt::Ready(group) => {
                self.group = Some(group);
                Ok(())
            }
            Attempt::PortTaken => Err(format!("{}: {} was taken meanwhile", self.kind, self.addr)),
            Attempt::Failed(why) => Err(format!("{}: {why}\n{}", self.kind, self.log_report())),
        }
    }

    /// The log, framed for a panic message.
    pub fn log_report(&self) -> String {
        let log = self.log();
        let log = if log.trim().is_empty() {
            "(empty)".to_owned()
        } else {
            log
        };
        format!(
            "---- {} log ----\n{}\n---- end of log ----",
            self.kind,
            log.trim_end()
        )
    }

    /// Writes the configuration and builds the command for the current address.
    fn command(&mut self, program: &Path) -> Result<Command, String> {
        let launch = Launch {
            dir: self.dir.path(),
            addr: &self.addr,
            options: &self.options,
            document_root: &self.document_root,
        };
        let mut command = Command::new(program);
        let env = match self.kind.program() {
            Program::PhpFpm => php_fpm::configure(&launch, &mut command),
            Program::PhpCgi => php_cgi::configure(&launch, &mut command),
            Program::Flup => flup::configure(&launch, &mut command),
            Program::Fcgiwrap => fcgiwrap::configure(&launch, &mut command),
        }?;
        self.command_line = process::isolate(&mut command, self.dir.path(), &env);
        Ok(command)
    }

    /// Spawns the command and waits until the address accepts connections.
    fn attempt(&self, command: &mut Command) -> Attempt {
        if let Addr::Unix(path) = &self.addr {
            let _ = fs::remove_file(path);
        }
        let mut group = match ProcessGroup::spawn(command, &self.logs[0]) {
            Ok(group) => group,
            Err(why) => return Attempt::Failed(why),
        };
        let deadline = Instant::now() + self.options.startup_timeout;
        loop {
            if group.leader_exited() {
                let status = group.stop();
                if !self.kind.is_unix() && process::mentions_port_in_use(&self.log()) {
                    return Attempt::PortTaken;
                }
                return Attempt::Failed(format!(
                    "exited ({}) before accepting connections on {}",
                    process::describe(status),
                    self.addr
                ));
            }
            // A connection also counts only if our process is still alive: if it died
            // because the port was taken, someone else is answering.
            if self.addr.accepts() && !group.leader_exited() {
                return Attempt::Ready(group);
            }
            if Instant::now() >= deadline {
                group.stop();
                return Attempt::Failed(format!(
                    "did not accept connections on {} within {:?}",
                    self.addr, self.options.startup_timeout
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RunningBackend {
    fn drop(&mut self) {
        self.stop();
    }
}
