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
    /// uWSGI `--scgi-socket`.
    UwsgiScgi,
    /// uWSGI `--uwsgi-socket` (its native protocol).
    UwsgiNative,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::FlupScgi => "flup-scgi",
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
