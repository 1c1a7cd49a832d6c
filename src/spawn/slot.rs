//! One process slot: a socket that outlives the processes started on it, and the
//! thread that starts the program, waits for it, and restarts it by the policy.
//!
//! The socket is created once and kept open by the supervisor across restarts, so a
//! connection made while one process retires and the next starts waits in the
//! listen backlog for the next one instead of being refused: that is what makes
//! php-cgi's `PHP_FCGI_MAX_REQUESTS` invisible to clients even with a single process.
//! Only a crash loop closes it (queued connections then fail at once rather than wait
//! for a process that is not coming).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::exec::{self, Launch};
use super::policy::{Exit, Next, RestartPolicy};
use super::supervisor::{Shared, lock};
use crate::client::Backend;
use crate::discover::Change;

/// What a slot thread owns.
pub(crate) struct Slot {
    pub(crate) index: usize,
    /// The pid of the slot's process until it is reaped (shutdown signals it).
    pub(crate) running: Arc<Mutex<Option<u32>>>,
    pub(crate) path: PathBuf,
    /// `None` after a crash loop closed it.
    pub(crate) listener: Option<UnixListener>,
    /// The write end of the slot's output pipe, handed to every process.
    pub(crate) output: OwnedFd,
}

impl Slot {
    fn backend(&self) -> Backend {
        Backend::unix(self.path.clone())
    }

    /// The slot's listening socket, bound again if a crash loop closed it.
    fn listener(&mut self) -> io::Result<&UnixListener> {
        if self.listener.is_none() {
            // A socket file left by the closed listener would make bind fail.
            let _ = std::fs::remove_file(&self.path);
            self.listener = Some(UnixListener::bind(&self.path)?);
        }
        self.listener
            .as_ref()
            .ok_or_else(|| io::Error::other("listener vanished"))
    }

    fn close_listener(&mut self) {
        self.listener = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The slot thread: start, wait, decide, until the supervisor stops.
pub(crate) fn run(shared: Arc<Shared>, mut slot: Slot) {
    let mut policy = RestartPolicy::new(shared.plan.restart);
    // The slot's backend is a fleet member from the build on.
    let mut member = true;
    // After a clean exit the restart is routine (php-cgi retiring every N requests):
    // logged at debug, not as news.
    let mut routine = false;
    while !shared.is_stopping() {
        let started = Instant::now();
        let Some((exit, what)) = start_and_wait(&shared, &mut slot, &mut member, routine) else {
            break;
        };
        let program = shared.program.as_str();
        let process = slot.index;
        let next = policy.on_exit(started, Instant::now(), exit);
        routine = next == Next::Now && exit == Exit::Clean;
        match next {
            Next::Now => {
                if exit == Exit::Clean {
                    tracing::debug!(target: "tower_fastcgi::spawn", program, process, "FastCGI program {what}; restarting it");
                } else {
                    tracing::warn!(target: "tower_fastcgi::spawn", program, process, "FastCGI program {what}; restarting it");
                }
            }
            Next::After(wait) => {
                if exit == Exit::Failed {
                    tracing::warn!(target: "tower_fastcgi::spawn", program, process, "FastCGI program {what}; restarting it in {wait:?}");
                    // Requests go to the other processes meanwhile.
                    leave(&shared, &slot, &mut member);
                } else {
                    tracing::warn!(target: "tower_fastcgi::spawn", program, process, "FastCGI program {what} right after its start; restarting it in {wait:?}");
                }
                if !shared.sleep(wait) {
                    break;
                }
            }
            Next::Stop(retry) => {
                let cfg = shared.plan.restart;
                tracing::error!(
                    target: "tower_fastcgi::spawn",
                    program,
                    process,
                    "FastCGI program is crash-looping: {} failures within {:?}, the last: {what}; \
                     not restarting it for {retry:?} (requests go to other processes; with none \
                     left the mount answers 503)",
                    cfg.crash_failures,
                    cfg.crash_window,
                );
                leave(&shared, &slot, &mut member);
                slot.close_listener();
                if !shared.sleep(retry) {
                    break;
                }
                tracing::info!(target: "tower_fastcgi::spawn", program, process, "trying the crash-looping FastCGI program again");
            }
        }
    }
}

/// Takes the slot's backend out of the fleet (its pool drains).
fn leave(shared: &Shared, slot: &Slot, member: &mut bool) {
    if std::mem::replace(member, false) {
        shared.send(Change::Remove(slot.backend()));
    }
}

/// One process's life: `None` when the supervisor stopped meanwhile, else how it
/// ended and a description for the log.
fn start_and_wait(
    shared: &Shared,
    slot: &mut Slot,
    member: &mut bool,
    routine: bool,
) -> Option<(Exit, String)> {
    let fds = slot.output.try_clone().and_then(|output| {
        let listener = OwnedFd::from(slot.listener()?.try_clone()?);
        Ok((listener, output))
    });
    let (listener, output) = match fds {
        Ok(fds) => fds,
        Err(e) => return Some((Exit::Failed, format!("could not get its socket ready: {e}"))),
    };
    let plan = &shared.plan;
    let launch = Launch {
        program: &plan.program,
        args: &plan.args,
        env: &plan.env,
        current_dir: plan.current_dir.as_deref(),
        listener,
        output,
    };
    let mut child = {
        // Holding the slot's lock while starting: shutdown either sees the pid (and
        // signals it) or has set `stopping` before we look (and nothing starts).
        let mut running = lock(&slot.running);
        if shared.is_stopping() {
            return None;
        }
        match exec::start(launch) {
            Ok(child) => {
                *running = Some(child.id());
                child
            }
            Err(e) => return Some((Exit::Failed, format!("could not be started: {e}"))),
        }
    };
    let pid = child.id();
    if routine {
        tracing::debug!(target: "tower_fastcgi::spawn", program = %shared.program, process = slot.index, pid, "restarted FastCGI program");
    } else {
        tracing::info!(target: "tower_fastcgi::spawn", program = %shared.program, process = slot.index, pid, socket = %slot.path.display(), "started FastCGI program");
    }
    if !std::mem::replace(member, true) {
        shared.send(Change::Insert(slot.backend()));
    }
    // The leader has exited but is not reaped: its pid still names its group, so
    // whatever it left behind (workers, CGI scripts holding the socket) can be killed
    // without any risk of hitting a reused id. Then it is reaped.
    let waited = exec::wait_exited(pid);
    {
        let mut running = lock(&slot.running);
        exec::signal_group(pid, exec::SIGKILL);
        *running = None;
    }
    let status = child.wait().and_then(|s| waited.map(|()| s));
    if shared.is_stopping() {
        return None;
    }
    Some(match status {
        Ok(status) => describe(status),
        Err(e) => (Exit::Failed, format!("could not be waited for: {e}")),
    })
}

fn describe(status: ExitStatus) -> (Exit, String) {
    match (status.code(), status.signal()) {
        (Some(0), _) => (Exit::Clean, "exited with status 0".to_owned()),
        (Some(code), _) => (Exit::Failed, format!("exited with status {code}")),
        (None, Some(signal)) => (Exit::Failed, format!("was killed by signal {signal}")),
        (None, None) => (Exit::Failed, format!("ended ({status})")),
    }
}
