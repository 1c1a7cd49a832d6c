//! Real FastCGI backends (php-fpm, php-cgi, flup, fcgiwrap) started as child processes.
//!
//! Every [`Backend`] gets a fresh temporary directory holding its configuration, its logs,
//! its Unix socket (if any) and a document root with copies of `tests/fixtures`. It listens
//! on 127.0.0.1 (a free port) or on a Unix socket in that directory, runs in a process group
//! of its own with a clean environment, and the whole group is stopped when the value is
//! dropped, also while a failing test unwinds.

use std::collections::{HashMap, HashSet};
use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::raw_client::{self, Params, Response};

/// The environment every backend starts with (nothing else is inherited: php-cgi copies
/// its whole process environment into `$_SERVER`).
const CLEAN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Directories searched for backend programs after `$PATH` (Debian puts php-fpm and
/// fcgiwrap in /usr/sbin, which is not on every user's PATH).
const EXTRA_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// How long a stopping backend gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_millis(300);

/// How many times a TCP backend is restarted on a fresh port when its port was taken.
const PORT_ATTEMPTS: usize = 5;

/// A program that can serve FastCGI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Program {
    /// `php-fpm` (Debian: `/usr/sbin/php-fpm8.2`).
    PhpFpm,
    /// `php-cgi -b` (Debian: `/usr/bin/php-cgi8.2`).
    PhpCgi,
    /// Python's flup `WSGIServer` running `tests/fixtures/wsgi_app.py`.
    Flup,
    /// `fcgiwrap` running the shell scripts of `tests/fixtures/cgi`.
    Fcgiwrap,
}

impl Program {
    /// Short name used in messages: `php-fpm`, `php-cgi`, `flup`, `fcgiwrap`.
    pub fn name(self) -> &'static str {
        match self {
            Program::PhpFpm => "php-fpm",
            Program::PhpCgi => "php-cgi",
            Program::Flup => "flup",
            Program::Fcgiwrap => "fcgiwrap",
        }
    }
}

/// One backend program on one kind of socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    PhpFpmTcp,
    PhpFpmUnix,
    PhpCgiTcp,
    PhpCgiUnix,
    FlupTcp,
    FlupUnix,
    FcgiwrapTcp,
    FcgiwrapUnix,
}

impl Kind {
    /// Every kind, for tests that run the same check against all backends.
    pub const ALL: [Kind; 8] = [
        Kind::PhpFpmTcp,
        Kind::PhpFpmUnix,
        Kind::PhpCgiTcp,
        Kind::PhpCgiUnix,
        Kind::FlupTcp,
        Kind::FlupUnix,
        Kind::FcgiwrapTcp,
        Kind::FcgiwrapUnix,
    ];

    /// The program this kind runs.
    pub fn program(self) -> Program {
        match self {
            Kind::PhpFpmTcp | Kind::PhpFpmUnix => Program::PhpFpm,
            Kind::PhpCgiTcp | Kind::PhpCgiUnix => Program::PhpCgi,
            Kind::FlupTcp | Kind::FlupUnix => Program::Flup,
            Kind::FcgiwrapTcp | Kind::FcgiwrapUnix => Program::Fcgiwrap,
        }
    }

    /// Whether the backend listens on a Unix socket (otherwise on 127.0.0.1).
    pub fn is_unix(self) -> bool {
        matches!(
            self,
            Kind::PhpFpmUnix | Kind::PhpCgiUnix | Kind::FlupUnix | Kind::FcgiwrapUnix
        )
    }

    /// Whether the backend runs PHP scripts.
    pub fn is_php(self) -> bool {
        matches!(self.program(), Program::PhpFpm | Program::PhpCgi)
    }

    /// Whether SCRIPT_FILENAME names the script to run (php-fpm, php-cgi, fcgiwrap), as
    /// opposed to one application routing on PATH_INFO (flup).
    pub fn uses_script_filename(self) -> bool {
        self.program() != Program::Flup
    }

    /// `php-fpm (tcp)`, `flup (unix)`, ...
    pub fn name(self) -> String {
        let socket = if self.is_unix() { "unix" } else { "tcp" };
        format!("{} ({socket})", self.program().name())
    }

    /// The request target of a fixture for this kind: `target("stream?bytes=10")` is
    /// `/stream.php?bytes=10` for PHP, `/stream.cgi?bytes=10` for fcgiwrap and
    /// `/stream?bytes=10` for flup. Fixtures: env, echo, stream, status, cookies, redirect,
    /// stderr, sleep, head.
    pub fn target(self, fixture: &str) -> String {
        let fixture = fixture.trim_start_matches('/');
        let (name, query) = match fixture.split_once('?') {
            Some((name, query)) => (name, Some(query)),
            None => (fixture, None),
        };
        let extension = match self.program() {
            Program::PhpFpm | Program::PhpCgi => ".php",
            Program::Fcgiwrap => ".cgi",
            Program::Flup => "",
        };
        match query {
            Some(query) => format!("/{name}{extension}?{query}"),
            None => format!("/{name}{extension}"),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Where a backend listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Addr {
    /// The same address as the crate's backend type, for building an `FcgiService`.
    pub fn to_backend(&self) -> tower_fastcgi::Backend {
        match self {
            Addr::Tcp(addr) => tower_fastcgi::Backend::tcp(addr.to_string()),
            Addr::Unix(path) => tower_fastcgi::Backend::unix(path.clone()),
        }
    }

    /// Whether something accepts connections there (the connection is closed at once).
    fn accepts(&self) -> bool {
        match self {
            Addr::Tcp(addr) => TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok(),
            Addr::Unix(path) => UnixStream::connect(path).is_ok(),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(addr) => write!(f, "{addr}"),
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Settings for a backend; [`Options::default`] suits most tests.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker processes: php-fpm `pm.max_children` (pm = static), php-cgi
    /// `PHP_FCGI_CHILDREN`, fcgiwrap `-c`; flup keeps at least 16 spare threads whatever
    /// this says (fewer make it queue connections behind kept-alive ones). Default 4.
    pub workers: usize,
    /// Requests a worker serves before it is replaced: php-fpm `pm.max_requests`, php-cgi
    /// `PHP_FCGI_MAX_REQUESTS`. 0 (the default) means no limit. Ignored by flup and fcgiwrap.
    pub max_requests: u32,
    /// PHP settings added after the defaults (php-fpm `php_admin_value[...]`, php-cgi `-d`).
    pub ini: Vec<(String, String)>,
    /// Extra php-fpm pool directives, e.g. `("request_terminate_timeout", "5s")`.
    pub fpm_pool: Vec<(String, String)>,
    /// flup: serve with `multiplexed=True` (concurrent requests on one connection).
    pub multiplexed: bool,
    /// fcgiwrap: pass `-f` so that CGI stderr travels as FCGI_STDERR (the default); without
    /// it the scripts' stderr goes to fcgiwrap's own stderr, i.e. [`Backend::log`].
    pub cgi_stderr_over_fcgi: bool,
    /// How long to wait for the backend to accept connections. Default 10 s.
    pub startup_timeout: Duration,
    /// Serve this existing directory (an application such as DokuWiki) instead of a
    /// fresh document root holding copies of the fixtures. Default: `None`.
    pub document_root: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            workers: 4,
            max_requests: 0,
            ini: Vec::new(),
            fpm_pool: Vec::new(),
            multiplexed: false,
            cgi_stderr_over_fcgi: true,
            startup_timeout: Duration::from_secs(10),
            document_root: None,
        }
    }
}

impl Options {
    pub fn workers(mut self, workers: usize) -> Options {
        self.workers = workers;
        self
    }

    pub fn max_requests(mut self, max_requests: u32) -> Options {
        self.max_requests = max_requests;
        self
    }

    pub fn ini(mut self, name: &str, value: &str) -> Options {
        self.ini.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn fpm_pool(mut self, name: &str, value: &str) -> Options {
        self.fpm_pool.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn multiplexed(mut self, multiplexed: bool) -> Options {
        self.multiplexed = multiplexed;
        self
    }

    pub fn cgi_stderr_over_fcgi(mut self, on: bool) -> Options {
        self.cgi_stderr_over_fcgi = on;
        self
    }

    pub fn startup_timeout(mut self, timeout: Duration) -> Options {
        self.startup_timeout = timeout;
        self
    }

    pub fn document_root(mut self, root: impl Into<PathBuf>) -> Options {
        self.document_root = Some(root.into());
        self
    }
}

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

/// A running backend; dropping it stops its whole process group.
pub struct Backend {
    kind: Kind,
    options: Options,
    addr: Addr,
    document_root: PathBuf,
    logs: Vec<PathBuf>,
    startup_time: Duration,
    command_line: String,
    child: Option<Child>,
    // Dropped last: the processes are gone before their directory is removed.
    dir: tempfile::TempDir,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .field("pid", &self.pid())
            .field("command_line", &self.command_line)
            .finish()
    }
}

/// What one attempt at starting produced.
enum Attempt {
    Ready(Child),
    /// The port was taken between choosing it and the backend binding it.
    PortTaken,
    Failed(String),
}

impl Backend {
    /// Starts a backend of `kind` and waits until it accepts connections.
    pub fn start(kind: Kind, options: Options) -> Result<Backend, StartError> {
        let program = locate(kind.program()).map_err(StartError::Missing)?;
        let dir = tempfile::Builder::new()
            .prefix("fcgi-interop-")
            .tempdir()
            .map_err(|e| StartError::Failed(format!("cannot create a temporary directory: {e}")))?;
        let document_root = match &options.document_root {
            Some(root) => root.clone(),
            None => {
                let root = dir.path().join("www");
                install_fixtures(kind.program(), &root).map_err(StartError::Failed)?;
                root
            }
        };

        let mut backend = Backend {
            kind,
            options,
            addr: Addr::Unix(dir.path().join(format!("{}.sock", kind.program().name()))),
            document_root,
            logs: vec![dir.path().join("stderr.log")],
            startup_time: Duration::ZERO,
            command_line: String::new(),
            child: None,
            dir,
        };
        if kind.program() == Program::PhpFpm {
            backend.logs.push(backend.dir.path().join("php-fpm.log"));
        }

        let started = Instant::now();
        for attempt in 1..=PORT_ATTEMPTS {
            if !kind.is_unix() {
                let port = free_port().map_err(|e| {
                    StartError::Failed(format!("cannot find a free port on 127.0.0.1: {e}"))
                })?;
                backend.addr = Addr::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
            }
            let mut command = backend.command(&program).map_err(StartError::Failed)?;
            match backend.attempt(&mut command) {
                Attempt::Ready(child) => {
                    backend.child = Some(child);
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
    /// (a copy of `tests/fixtures`, private to this backend; see [`Backend::write_script`]),
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
        self.child.as_ref().map(Child::id)
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

    /// Waits up to `timeout` until [`Backend::log`] contains `needle` (logs are written
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
        let path = self.document_root.join(name.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        if name.ends_with(".cgi") || name.ends_with(".sh") {
            set_mode(&path, 0o755).unwrap_or_else(|e| panic!("{e}"));
        }
        path
    }

    /// The request target of a fixture for this backend ([`Kind::target`]).
    pub fn target(&self, fixture: &str) -> String {
        self.kind.target(fixture)
    }

    /// A CGI/1.1 environment for `method` and `target` (path and query, as in
    /// [`Backend::target`]), the way a web server would send it: REQUEST_METHOD,
    /// REQUEST_URI, QUERY_STRING, SCRIPT_NAME, PATH_INFO, SCRIPT_FILENAME and DOCUMENT_ROOT
    /// (for script backends), SERVER_*, REMOTE_*, GATEWAY_INTERFACE and HTTP_HOST.
    /// For script backends, the path is split after the first `.php`/`.cgi` segment.
    /// CONTENT_LENGTH and CONTENT_TYPE are not set here ([`Backend::request`] sets the length).
    pub fn params(&self, method: &str, target: &str) -> Params {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, query),
            None => (target, ""),
        };
        let (script_name, path_info) = if self.kind.uses_script_filename() {
            split_script(path)
        } else {
            ("", path)
        };
        let mut params = Params::new();
        params
            .set("GATEWAY_INTERFACE", "CGI/1.1")
            .set("SERVER_SOFTWARE", "tower-fastcgi-tests")
            .set("SERVER_PROTOCOL", "HTTP/1.1")
            .set("SERVER_NAME", "localhost")
            .set("SERVER_ADDR", "127.0.0.1")
            .set("SERVER_PORT", "80")
            .set("REMOTE_ADDR", "127.0.0.1")
            .set("REMOTE_PORT", "54321")
            .set("REQUEST_METHOD", method)
            .set("REQUEST_URI", target)
            .set("QUERY_STRING", query)
            .set("SCRIPT_NAME", script_name)
            .set("HTTP_HOST", "localhost");
        if !path_info.is_empty() {
            params.set("PATH_INFO", path_info);
        }
        if self.kind.uses_script_filename() {
            let root = self.document_root.to_string_lossy().into_owned();
            params
                .set("DOCUMENT_ROOT", &root)
                .set("SCRIPT_FILENAME", format!("{root}{script_name}"));
        }
        params
    }

    /// Sends one request with the raw client on a new connection: the environment of
    /// [`Backend::params`] plus CONTENT_LENGTH (when there is a body) and `body` on STDIN.
    pub fn request(&self, method: &str, target: &str, body: &[u8]) -> io::Result<Response> {
        let mut params = self.params(method, target);
        if !body.is_empty() {
            params.set("CONTENT_LENGTH", body.len().to_string());
        }
        raw_client::request(&self.addr, &params, body)
    }

    /// GET of a fixture (`"env"`, `"stream?bytes=10"`, ...); panics with the backend's log
    /// if the request fails at the FastCGI level.
    pub fn get(&self, fixture: &str) -> Response {
        let target = self.target(fixture);
        self.request("GET", &target, b"").unwrap_or_else(|e| {
            panic!(
                "{}: GET {target} failed: {e}\n{}",
                self.kind,
                self.log_report()
            )
        })
    }

    /// POST of `body` to a fixture; panics with the backend's log if the request fails.
    pub fn post(&self, fixture: &str, body: &[u8]) -> Response {
        let target = self.target(fixture);
        self.request("POST", &target, body).unwrap_or_else(|e| {
            panic!(
                "{}: POST {target} failed: {e}\n{}",
                self.kind,
                self.log_report()
            )
        })
    }

    /// Stops the backend now (Drop does the same).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_group(child);
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
        let dir = self.dir.path().to_path_buf();
        let addr = self.addr.clone();
        let options = &self.options;
        let mut command = Command::new(program);
        let mut shown_env: Vec<(String, String)> = Vec::new();
        match self.kind.program() {
            Program::PhpFpm => {
                let conf = dir.join("php-fpm.conf");
                fs::write(&conf, fpm_config(&dir, &addr, options))
                    .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
                command
                    .arg("-n")
                    .arg("-F")
                    .arg("-R")
                    .arg("-p")
                    .arg(&dir)
                    .arg("-y")
                    .arg(&conf);
            }
            Program::PhpCgi => {
                if options.workers > 0 {
                    shown_env.push(("PHP_FCGI_CHILDREN".into(), options.workers.to_string()));
                }
                shown_env.push((
                    "PHP_FCGI_MAX_REQUESTS".into(),
                    options.max_requests.to_string(),
                ));
                command.arg("-n");
                for (name, value) in php_ini(options) {
                    command.arg("-d").arg(format!("{name}={value}"));
                }
                command.arg("-b").arg(match &addr {
                    Addr::Tcp(addr) => OsString::from(addr.to_string()),
                    Addr::Unix(path) => path.clone().into_os_string(),
                });
            }
            Program::Flup => {
                let flup = flup_location().map_err(|e| format!("flup vanished: {e}"))?;
                shown_env.push((
                    "PYTHONPATH".into(),
                    flup.pythonpath.to_string_lossy().into_owned(),
                ));
                shown_env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
                let spare = options.workers.max(16);
                command
                    .arg("-u")
                    .arg(self.document_root.join("wsgi_app.py"))
                    .arg(match &addr {
                        Addr::Tcp(addr) => addr.to_string(),
                        Addr::Unix(path) => format!("unix:{}", path.display()),
                    })
                    .arg("--min-spare")
                    .arg(spare.to_string())
                    .arg("--max-spare")
                    .arg((spare * 2).to_string());
                if options.multiplexed {
                    command.arg("--multiplexed");
                }
            }
            Program::Fcgiwrap => {
                if options.cgi_stderr_over_fcgi {
                    command.arg("-f");
                }
                command
                    .arg("-c")
                    .arg(options.workers.max(1).to_string())
                    .arg("-s")
                    .arg(match &addr {
                        Addr::Tcp(addr) => format!("tcp:{addr}"),
                        Addr::Unix(path) => format!("unix:{}", path.display()),
                    });
            }
        }
        let home = dir.to_string_lossy().into_owned();
        command
            .env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .envs(shown_env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .process_group(0);

        let mut line = format!("PATH={CLEAN_PATH} HOME={home} LANG=C.UTF-8");
        for (name, value) in &shown_env {
            line.push_str(&format!(" {name}={value}"));
        }
        line.push_str(&format!(" {}", program.display()));
        for arg in command.get_args() {
            line.push_str(&format!(" {}", arg.to_string_lossy()));
        }
        self.command_line = line;
        Ok(command)
    }

    /// Spawns the command and waits until the address accepts connections.
    fn attempt(&self, command: &mut Command) -> Attempt {
        if let Addr::Unix(path) = &self.addr {
            let _ = fs::remove_file(path);
        }
        let log_path = &self.logs[0];
        let log = match File::create(log_path) {
            Ok(log) => log,
            Err(e) => return Attempt::Failed(format!("cannot create {}: {e}", log_path.display())),
        };
        let log_err = match log.try_clone() {
            Ok(log) => log,
            Err(e) => return Attempt::Failed(format!("cannot duplicate the log file handle: {e}")),
        };
        command.stdout(log).stderr(log_err);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return Attempt::Failed(format!("cannot spawn: {e}")),
        };

        let deadline = Instant::now() + self.options.startup_timeout;
        loop {
            if leader_exited(child.id()) {
                let status = stop_group(child);
                let log = self.log();
                if !self.kind.is_unix() && mentions_port_in_use(&log) {
                    return Attempt::PortTaken;
                }
                return Attempt::Failed(format!(
                    "exited ({}) before accepting connections on {}",
                    describe(status),
                    self.addr
                ));
            }
            // A connection also counts only if our process is still alive: if it died
            // because the port was taken, someone else is answering.
            if self.addr.accepts() && !leader_exited(child.id()) {
                return Attempt::Ready(child);
            }
            if Instant::now() >= deadline {
                let _ = stop_group(child);
                return Attempt::Failed(format!(
                    "did not accept connections on {} within {:?}",
                    self.addr, self.options.startup_timeout
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Splits a script backend's path after its first `.php`/`.cgi` segment.
fn split_script(path: &str) -> (&str, &str) {
    let mut end = 0;
    for segment in path.split_inclusive('/') {
        end += segment.len();
        let name = segment.trim_end_matches('/');
        if name.ends_with(".php") || name.ends_with(".cgi") {
            let end = end - (segment.len() - name.len());
            return (&path[..end], &path[end..]);
        }
    }
    (path, "")
}

/// The PHP settings both PHP backends get, then the test's own.
fn php_ini(options: &Options) -> Vec<(String, String)> {
    let defaults = [
        ("post_max_size", "2G"),
        ("upload_max_filesize", "2G"),
        ("memory_limit", "256M"),
        ("max_execution_time", "60"),
        ("output_buffering", "0"),
        ("html_errors", "0"),
        ("display_errors", "0"),
        ("log_errors", "1"),
        ("date.timezone", "UTC"),
    ];
    let mut ini: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    // One entry per name: php-fpm keeps the first php_admin_value of a name, not the last.
    for (name, value) in &options.ini {
        match ini.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.clone(),
            None => ini.push((name.clone(), value.clone())),
        }
    }
    ini
}

/// A php-fpm configuration with one static pool.
fn fpm_config(dir: &Path, addr: &Addr, options: &Options) -> String {
    let mut conf = String::new();
    conf.push_str("[global]\n");
    conf.push_str(&format!("pid = {}\n", dir.join("php-fpm.pid").display()));
    conf.push_str(&format!(
        "error_log = {}\n",
        dir.join("php-fpm.log").display()
    ));
    conf.push_str("log_level = notice\nlog_limit = 65536\nlog_buffering = no\ndaemonize = no\n\n");
    conf.push_str("[tests]\n");
    if is_root() {
        // Workers must be told to stay root; php-fpm refuses otherwise (with -R).
        conf.push_str("user = root\ngroup = root\n");
    }
    match addr {
        Addr::Tcp(addr) => conf.push_str(&format!("listen = {addr}\n")),
        Addr::Unix(path) => conf.push_str(&format!(
            "listen = {}\nlisten.mode = 0666\n",
            path.display()
        )),
    }
    conf.push_str("listen.backlog = 511\n");
    conf.push_str("pm = static\n");
    conf.push_str(&format!("pm.max_children = {}\n", options.workers.max(1)));
    conf.push_str(&format!("pm.max_requests = {}\n", options.max_requests));
    conf.push_str("request_terminate_timeout = 120s\n");
    // The workers' own stderr (php://stderr) goes to php-fpm.log, undecorated.
    conf.push_str("catch_workers_output = yes\ndecorate_workers_output = no\n");
    conf.push_str("clear_env = yes\n");
    for (name, value) in &options.fpm_pool {
        conf.push_str(&format!("{name} = {value}\n"));
    }
    for (name, value) in php_ini(options) {
        conf.push_str(&format!("php_admin_value[{name}] = {value}\n"));
    }
    conf
}

/// Copies the fixtures a program serves into its document root.
fn install_fixtures(program: Program, root: &Path) -> Result<(), String> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures");
    fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let copy = |from: &Path, mode: u32| -> Result<(), String> {
        let name = from
            .file_name()
            .ok_or_else(|| format!("bad fixture path {}", from.display()))?;
        let to = root.join(name);
        fs::copy(from, &to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
        set_mode(&to, mode)
    };
    match program {
        Program::Flup => copy(&fixtures.join("wsgi_app.py"), 0o644),
        Program::PhpFpm | Program::PhpCgi | Program::Fcgiwrap => {
            let sub = if program == Program::Fcgiwrap {
                "cgi"
            } else {
                "php"
            };
            let from = fixtures.join(sub);
            let entries =
                fs::read_dir(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
            for entry in entries {
                let path = entry
                    .map_err(|e| format!("cannot read {}: {e}", from.display()))?
                    .path();
                // Executable bits are set here, so a checkout without them still works.
                let mode = if path.extension().is_some_and(|ext| ext == "cgi") {
                    0o755
                } else {
                    0o644
                };
                copy(&path, mode)?;
            }
            Ok(())
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

/// A port on 127.0.0.1 that was free a moment ago and that this process has not handed
/// out before (parallel tests never get the same one).
fn free_port() -> io::Result<u16> {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if given.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::other(
        "the kernel kept handing out ports already used",
    ))
}

fn mentions_port_in_use(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use") || log.contains("eaddrinuse") || log.contains("(98)")
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => status.to_string(),
        None => "status unknown".to_owned(),
    }
}

/// Whether a child has exited, without reaping it (a zombie keeps its process group id
/// reserved, so the group can still be signalled safely).
fn leader_exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rfind(')') {
            Some(i) => matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => false,
        },
        Err(_) => true,
    }
}

/// SIGTERM to the whole group, SIGKILL after a grace period, then reaps the leader.
fn stop_group(mut child: Child) -> Option<ExitStatus> {
    let pid = child.id();
    let group = i32::try_from(pid).map(|pid| -pid).ok();
    if let Some(group) = group {
        sys::kill(group, sys::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while !leader_exited(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        // Also catches workers and CGI scripts the leader left behind.
        sys::kill(group, sys::SIGKILL);
    } else {
        let _ = child.kill();
    }
    child.wait().ok()
}

fn is_root() -> bool {
    sys::geteuid() == 0
}

mod sys {
    pub const SIGKILL: i32 = 9;
    pub const SIGTERM: i32 = 15;

    // The C library std already links; no crate needed for two calls.
    unsafe extern "C" {
        pub safe fn kill(pid: i32, sig: i32) -> i32;
        pub safe fn geteuid() -> u32;
    }
}

// ---------------------------------------------------------------------------------------
// Finding the programs.

/// Where flup was found.
#[derive(Debug, Clone)]
struct FlupLocation {
    python: PathBuf,
    /// The directory holding the `flup` package (passed as PYTHONPATH, so that a
    /// `pip install --user` still works with the backend's private HOME).
    pythonpath: PathBuf,
}

/// The directories searched for programs: `$FCGI_TEST_PATH` alone if set (tests use it to
/// simulate a machine without backends), else `$PATH` and the usual sbin/bin directories.
fn search_dirs() -> Vec<PathBuf> {
    if let Some(dirs) = env::var_os("FCGI_TEST_PATH") {
        return env::split_paths(&dirs).collect();
    }
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect())
        .unwrap_or_default();
    for extra in EXTRA_DIRS {
        if !dirs.iter().any(|dir| dir == Path::new(extra)) {
            dirs.push(PathBuf::from(extra));
        }
    }
    dirs
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` itself, or else the highest versioned `name<digits.dots>` (Debian installs
/// `php-fpm8.2` and only an alternative named `php-fpm` for some packages).
fn find_program(name: &str) -> Option<PathBuf> {
    for dir in search_dirs() {
        let exact = dir.join(name);
        if is_executable(&exact) {
            return Some(exact);
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut best: Option<(Vec<u32>, PathBuf)> = None;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(version) = file_name.to_str().and_then(|n| n.strip_prefix(name)) else {
                continue;
            };
            let parts: Option<Vec<u32>> = version.split('.').map(|p| p.parse().ok()).collect();
            let Some(parts) = parts.filter(|_| !version.is_empty()) else {
                continue;
            };
            let path = entry.path();
            if is_executable(&path) && best.as_ref().is_none_or(|(v, _)| parts > *v) {
                best = Some((parts, path));
            }
        }
        if let Some((_, path)) = best {
            return Some(path);
        }
    }
    None
}

fn flup_location() -> Result<FlupLocation, String> {
    static FLUP: OnceLock<Result<FlupLocation, String>> = OnceLock::new();
    FLUP.get_or_init(|| {
        let python = find_program("python3")
            .ok_or_else(|| "flup: python3 not found (searched PATH and /usr/bin)".to_owned())?;
        let probe = "import os, sys, flup.server.fcgi as f\n\
                     print(sys.executable)\n\
                     print(os.path.dirname(os.path.dirname(os.path.abspath(f.__file__))))";
        let out = Command::new(&python)
            .arg("-c")
            .arg(probe)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("flup: cannot run {}: {e}", python.display()))?;
        if !out.status.success() {
            return Err(format!(
                "flup: the Python module is not installed for {} ({})",
                python.display(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no error output")
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let (Some(exe), Some(pythonpath)) = (lines.next(), lines.next()) else {
            return Err(format!("flup: unexpected probe output {text:?}"));
        };
        // pyenv's shims need pyenv's environment; the real interpreter does not.
        let exe = if exe.is_empty() {
            python
        } else {
            PathBuf::from(exe)
        };
        Ok(FlupLocation {
            python: exe,
            pythonpath: PathBuf::from(pythonpath),
        })
    })
    .clone()
}

/// The executable for a program, or why it is missing (cached per process).
pub fn locate(program: Program) -> Result<PathBuf, String> {
    static FOUND: OnceLock<Mutex<HashMap<Program, Result<PathBuf, String>>>> = OnceLock::new();
    let found = FOUND.get_or_init(Default::default);
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    found
        .entry(program)
        .or_insert_with(|| {
            let missing =
                |name: &str| format!("{name} not found in {}", describe_dirs(&search_dirs()));
            match program {
                Program::PhpFpm => find_program("php-fpm").ok_or_else(|| missing("php-fpm")),
                Program::PhpCgi => find_program("php-cgi").ok_or_else(|| missing("php-cgi")),
                Program::Fcgiwrap => find_program("fcgiwrap").ok_or_else(|| missing("fcgiwrap")),
                Program::Flup => flup_location().map(|flup| flup.python),
            }
        })
        .clone()
}

fn describe_dirs(dirs: &[PathBuf]) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    if env::var_os("FCGI_TEST_PATH").is_some() {
        format!("FCGI_TEST_PATH={}", names.join(":"))
    } else {
        names.join(":")
    }
}
