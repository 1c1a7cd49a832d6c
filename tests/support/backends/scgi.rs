//! Servers for the connector protocols (SCGI, uwsgi) running `tests/fixtures/wsgi_app.py`:
//! flup's `flup.server.scgi.WSGIServer` (here) and uWSGI (`uwsgi.rs`). Each listens on a
//! free 127.0.0.1 port in a process group of its own, in a temporary directory holding
//! its log, and the group is stopped when the value is dropped.

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::StartError;
use crate::support::fixtures;
use crate::support::process::{self, ProcessGroup};
use crate::support::programs;

/// How long a server gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Which server, speaking which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// flup's SCGI WSGIServer (threaded).
    FlupScgi,
    /// The reference implementation (PyPI `scgi` 2.x, `scgi_server.SCGIServer`) with a
    /// small WSGI adapter.
    PyScgi,
    /// uWSGI `--scgi-socket`.
    UwsgiScgi,
    /// uWSGI `--uwsgi-socket` (its native protocol).
    UwsgiNative,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::FlupScgi => "flup-scgi",
            Flavor::PyScgi => "pypi-scgi",
            Flavor::UwsgiScgi => "uwsgi-scgi",
            Flavor::UwsgiNative => "uwsgi-native",
        })
    }
}

/// A running connector server; dropping it stops its process group.
pub struct StreamServer {
    flavor: Flavor,
    addr: SocketAddr,
    log: PathBuf,
    group: ProcessGroup,
    _dir: tempfile::TempDir,
}

impl StreamServer {
    /// Starts `flavor`; `Missing` when its program (or module, or plugin) is absent.
    pub fn start(flavor: Flavor) -> Result<StreamServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("tower-fastcgi-conn-")
            .tempdir()
            .map_err(|e| StartError::Failed(format!("temp dir: {e}")))?;
        let app = dir.path().join("wsgi_app.py");
        fs::copy(fixtures::source_dir().join("wsgi_app.py"), &app)
            .map_err(|e| StartError::Failed(format!("copying wsgi_app.py: {e}")))?;
        let port =
            process::free_port().map_err(|e| StartError::Failed(format!("free port: {e}")))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (mut command, env) = match flavor {
            Flavor::FlupScgi => flup_command(dir.path(), &app, addr)?,
            Flavor::PyScgi => pypi_scgi_command(dir.path(), &app, addr)?,
            Flavor::UwsgiScgi => super::uwsgi::command(&app, addr, "--scgi-socket")?,
            Flavor::UwsgiNative => super::uwsgi::command(&app, addr, "--uwsgi-socket")?,
        };
        let line = process::isolate(&mut command, dir.path(), &env);
        let log = dir.path().join("server.log");
        let group = ProcessGroup::spawn(&mut command, &log).map_err(StartError::Failed)?;
        let server = StreamServer {
            flavor,
            addr,
            log,
            group,
            _dir: dir,
        };
        server.wait_listening().map_err(|why| {
            StartError::Failed(format!("{why}\ncommand: {line}\n{}", server.log_report()))
        })?;
        Ok(server)
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The address to give the service.
    pub fn backend(&self) -> tower_fastcgi::Backend {
        tower_fastcgi::Backend::tcp(self.addr.to_string())
    }

    /// The server's log, framed for a failure message.
    pub fn log_report(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        format!(
            "---- {} log ----\n{}\n---- end of log ----",
            self.flavor,
            log.trim_end()
        )
    }

    fn wait_listening(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.group.leader_exited() {
                return Err(format!("{} exited before listening", self.flavor));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{} did not listen on {} in time",
            self.flavor, self.addr
        ))
    }
}

type Launch = (Command, Vec<(String, String)>);

/// flup's SCGI server around the same application as the FastCGI interop tests.
fn flup_command(dir: &Path, app: &Path, addr: SocketAddr) -> Result<Launch, StartError> {
    let flup = programs::flup_location().map_err(StartError::Missing)?;
    let script = dir.join("scgi_server.py");
    let source = format!(
        "import sys\n\
         sys.path.insert(0, {app_dir:?})\n\
         from wsgi_app import app\n\
         from flup.server.scgi import WSGIServer\n\
         sys.stderr.write('flup scgi: serving on {addr}\\n')\n\
         WSGIServer(app, bindAddress=('127.0.0.1', {port}), minSpare=16, maxSpare=32).run()\n",
        app_dir = app.parent().unwrap_or(dir).display().to_string(),
        addr = addr,
        port = addr.port(),
    );
    fs::write(&script, source).map_err(|e| StartError::Failed(format!("{e}")))?;
    let mut command = Command::new(&flup.python);
    command.arg("-u").arg(&script);
    let env = vec![
        (
            "PYTHONPATH".into(),
            flup.pythonpath.to_string_lossy().into_owned(),
        ),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
    ];
    Ok((command, env))
}

/// The WSGI adapter for the `scgi` package's server: it has no WSGI support of its own
/// (`produce` gets the environment, the body size and the socket files). The body is
/// limited to CONTENT_LENGTH, as the package's docs ask.
const PYPI_SCGI_ADAPTER: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
from wsgi_app import app
from scgi.scgi_server import SCGIServer, SCGIHandler


class Input:
    def __init__(self, stream, left):
        self.stream, self.left = stream, left

    def read(self, size=-1):
        if self.left <= 0:
            return b""
        if size is None or size < 0 or size > self.left:
            size = self.left
        data = self.stream.read(size)
        self.left -= len(data)
        return data


class Handler(SCGIHandler):
    def produce(self, env, bodysize, input, output):
        environ = dict(env)
        environ.update({
            "wsgi.input": Input(input, bodysize), "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        })
        head = []

        def start_response(status, headers, exc_info=None):
            lines = ["Status: %s\r\n" % status] + ["%s: %s\r\n" % h for h in headers]
            head[:] = ["".join(lines) + "\r\n"]
            return output.write

        result = app(environ, start_response)
        try:
            for chunk in result:
                if head:
                    output.write(head.pop().encode("latin-1"))
                if chunk:
                    output.write(chunk)
            if head:
                output.write(head.pop().encode("latin-1"))
        finally:
            if hasattr(result, "close"):
                result.close()


sys.stderr.write("pypi scgi: serving on 127.0.0.1:%s\n" % sys.argv[2])
sys.stderr.flush()
SCGIServer(handler_class=Handler, host="127.0.0.1", port=int(sys.argv[2]), max_children=8).serve()
"#;

/// The `scgi` package's forking server around `wsgi_app.py`.
fn pypi_scgi_command(dir: &Path, app: &Path, addr: SocketAddr) -> Result<Launch, StartError> {
    let python = programs::flup_location()
        .map_err(StartError::Missing)?
        .python;
    // Where `scgi` lives (often the user site, which the backend's private HOME hides).
    let probe = Command::new(&python)
        .args(["-c", "import os, scgi.scgi_server as s; print(os.path.dirname(os.path.dirname(os.path.abspath(s.__file__))))"])
        .output()
        .map_err(|e| StartError::Missing(format!("python3: {e}")))?;
    if !probe.status.success() {
        return Err(StartError::Missing(
            "the scgi Python package (python3 -m pip install scgi)".into(),
        ));
    }
    let pythonpath = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
    let script = dir.join("pypi_scgi_server.py");
    fs::write(&script, PYPI_SCGI_ADAPTER).map_err(|e| StartError::Failed(format!("{e}")))?;
    let mut command = Command::new(&python);
    command
        .arg("-u")
        .arg(&script)
        .arg(app.parent().unwrap_or(dir))
        .arg(addr.port().to_string());
    let env = vec![
        ("PYTHONPATH".into(), pythonpath),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
    ];
    Ok((command, env))
}
