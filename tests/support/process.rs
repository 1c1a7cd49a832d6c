//! Child processes for the real backends: a clean environment, a process group of their
//! own, and a stop that takes the whole group down (workers and CGI scripts included),
//! also while a failing test unwinds.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The `PATH` every backend starts with (nothing else is inherited: php-cgi copies its
/// whole process environment into `$_SERVER`).
pub const CLEAN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a stopping group gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_millis(300);

/// Gives `command` a clean environment (`PATH`, `HOME` = `dir`, `LANG`, then `env`), `dir`
/// as its working directory, no stdin, and a process group of its own. Returns the
/// command line as a shell would show it, environment first, for failure messages.
pub fn isolate(command: &mut Command, dir: &Path, env: &[(String, String)]) -> String {
    let home = dir.to_string_lossy().into_owned();
    command
        .env_clear()
        .env("PATH", CLEAN_PATH)
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .process_group(0);

    let mut line = format!("PATH={CLEAN_PATH} HOME={home} LANG=C.UTF-8");
    for (name, value) in env {
        line.push_str(&format!(" {name}={value}"));
    }
    line.push_str(&format!(" {}", command.get_program().to_string_lossy()));
    for arg in command.get_args() {
        line.push_str(&format!(" {}", arg.to_string_lossy()));
    }
    line
}

/// A running process group (the leader's pid is the group id); dropping it stops the
/// whole group.
#[derive(Debug)]
pub struct ProcessGroup {
    child: Option<Child>,
}

impl ProcessGroup {
    /// Spawns `command` (prepared with [`isolate`]) with stdout and stderr appended to a
    /// fresh `log` file.
    pub fn spawn(command: &mut Command, log: &Path) -> Result<ProcessGroup, String> {
        let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot duplicate the log file handle: {e}"))?;
        command.stdout(out).stderr(err);
        let child = command.spawn().map_err(|e| format!("cannot spawn: {e}"))?;
        Ok(ProcessGroup { child: Some(child) })
    }

    /// The leader's process id, which is also the group id (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the leader has exited (or was stopped).
    pub fn leader_exited(&self) -> bool {
        self.pid().is_none_or(leader_exited)
    }

    /// SIGTERM to the whole group, SIGKILL after a grace period, then reaps the leader.
    /// Returns the leader's exit status (`None` if unknown or already stopped).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id();
        match i32::try_from(pid) {
            Ok(pid) => {
                let group = -pid;
                sys::kill(group, sys::SIGTERM);
                let deadline = Instant::now() + STOP_GRACE;
                while !leader_exited(child.id()) && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(5));
                }
                // Also catches workers and CGI scripts the leader left behind.
                sys::kill(group, sys::SIGKILL);
            }
            Err(_) => {
                let _ = child.kill();
            }
        }
        child.wait().ok()
    }
}

impl ProcessGroup {
    /// SIGKILL to the whole group at once, no grace (a crash, as the clients see it),
    /// then reaps the leader.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        match i32::try_from(child.id()) {
            Ok(pid) => {
                sys::kill(-pid, sys::SIGKILL);
            }
            Err(_) => {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.stop();
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

/// `exit status: 1`, or that it is unknown.
pub fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => status.to_string(),
        None => "status unknown".to_owned(),
    }
}

/// A port on 127.0.0.1 that was free a moment ago and that this process has not handed
/// out before (parallel tests never get the same one).
pub fn free_port() -> io::Result<u16> {
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

/// Whether a backend's log says it could not bind its port (someone took it between
/// [`free_port`] and the bind).
pub fn mentions_port_in_use(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use") || log.contains("eaddrinuse") || log.contains("(98)")
}

/// Whether the tests run as root (php-fpm then needs to be told to keep root workers).
pub fn is_root() -> bool {
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
