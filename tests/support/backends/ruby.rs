//! A Rack application over FastCGI (`Rack::Handler::FastCGI`, Debian `ruby-rack` +
//! `ruby-fcgi`): `tests/fixtures/rack_app.rb` on a free 127.0.0.1 port, in a process
//! group of its own that stops when the value is dropped.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::StartError;
use crate::support::fixtures;
use crate::support::process::{self, ProcessGroup};

const RUBY: &str = "/usr/bin/ruby";

/// A running Rack application.
pub struct RackServer {
    addr: SocketAddr,
    log: PathBuf,
    group: ProcessGroup,
    _dir: tempfile::TempDir,
}

impl RackServer {
    /// Starts the application; `Missing` without Ruby, rack or fcgi.
    pub fn start() -> Result<RackServer, StartError> {
        let probe = Command::new(RUBY)
            .args(["-e", "require 'rack'; require 'fcgi'"])
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            _ => {
                return Err(StartError::Missing(
                    "ruby with rack and fcgi (apt-get install ruby-rack ruby-fcgi)".into(),
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("tower-fastcgi-rack-")
            .tempdir()
            .map_err(|e| StartError::Failed(format!("temp dir: {e}")))?;
        let app = dir.path().join("rack_app.rb");
        fs::copy(fixtures::source_dir().join("rack_app.rb"), &app)
            .map_err(|e| StartError::Failed(format!("copying rack_app.rb: {e}")))?;
        let port =
            process::free_port().map_err(|e| StartError::Failed(format!("free port: {e}")))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut command = Command::new(RUBY);
        command.arg(&app).arg("127.0.0.1").arg(port.to_string());
        let line = process::isolate(&mut command, dir.path(), &[]);
        let log = dir.path().join("rack.log");
        let group = ProcessGroup::spawn(&mut command, &log).map_err(StartError::Failed)?;
        let server = RackServer {
            addr,
            log,
            group,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&server.addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if server.group.leader_exited() || Instant::now() > deadline {
                return Err(StartError::Failed(format!(
                    "rack_app did not listen on {addr}\ncommand: {line}\n{}",
                    server.log_report()
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn backend(&self) -> tower_fastcgi::Backend {
        tower_fastcgi::Backend::tcp(self.addr.to_string())
    }

    /// Whether the application process is still running.
    pub fn is_running(&self) -> bool {
        !self.group.leader_exited()
    }

    pub fn log_report(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        format!(
            "---- rack log ----\n{}\n---- end of log ----",
            log.trim_end()
        )
    }
}
