//! The supervisor: a private directory with one socket per process, a thread per
//! process slot, the changes they make to the service's fleet, and the shutdown when
//! it is dropped.
//!
//! Threads rather than tasks: a process is waited for with a blocking `waitid`, its
//! output read with blocking reads, and, on Linux, a child's parent-death signal
//! fires when the *thread* that started it ends, so the thread that starts a process
//! must live exactly as long as the process. A service can also be built and dropped
//! outside any runtime.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use tokio::sync::mpsc;

use super::config::Plan;
use super::exec;
use super::output;
use super::slot::{self, Slot};
use crate::client::Backend;
use crate::discover::Change;

/// What the slot threads and the supervisor share.
pub(crate) struct Shared {
    pub(crate) plan: Plan,
    /// The program as logs show it.
    pub(crate) program: String,
    stopping: AtomicBool,
    /// Sleeps between restarts wait on this, so shutdown cuts them short.
    sleep_lock: Mutex<()>,
    wake: Condvar,
    /// Per slot: the pid of its process until that process is reaped.
    running: Vec<Arc<Mutex<Option<u32>>>>,
    changes: mpsc::UnboundedSender<Change>,
}

impl Shared {
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Sleeps `wait`, or less if the supervisor stops; `false` if it stopped.
    pub(crate) fn sleep(&self, wait: Duration) -> bool {
        let guard = self.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
        let _unused = self
            .wake
            .wait_timeout_while(guard, wait, |_| !self.is_stopping());
        !self.is_stopping()
    }

    pub(crate) fn send(&self, change: Change) {
        // The receiver is gone only when the supervisor is, which stops everything.
        let _ = self.changes.send(change);
    }

    fn signal_all(&self, signal: i32) {
        for running in &self.running {
            let running = lock(running);
            if let Some(pid) = *running {
                exec::signal_group(pid, signal);
            }
        }
    }

    fn any_running(&self) -> bool {
        self.running.iter().any(|running| lock(running).is_some())
    }
}

/// A poisoned lock still holds a valid pid (or none): nothing is left half-written.
pub(crate) fn lock(running: &Mutex<Option<u32>>) -> MutexGuard<'_, Option<u32>> {
    running.lock().unwrap_or_else(|p| p.into_inner())
}

/// Running processes; dropping it stops them: SIGTERM to every process group, then
/// SIGKILL to those still there after the grace period (from a thread of its own, so
/// dropping never blocks).
pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    /// Holds the sockets; removed when the supervisor is dropped.
    _dir: tempfile::TempDir,
}

impl Supervisor {
    /// Creates the sockets and starts the processes. Returns the supervisor, its
    /// backends with their connection caps, and the stream of changes it makes.
    pub(crate) fn start(plan: Plan) -> Result<(SpawnChanges, Vec<(Backend, usize)>), String> {
        let dir = tempfile::Builder::new()
            .prefix("tower-fastcgi-spawn.")
            .tempdir()
            .map_err(|e| format!("spawn: cannot create the socket directory: {e}"))?;
        let program = plan.program.display().to_string();
        let mut slots = Vec::with_capacity(plan.procs);
        for index in 0..plan.procs {
            let path = dir.path().join(format!("{index}.sock"));
            let listener = std::os::unix::net::UnixListener::bind(&path)
                .map_err(|e| format!("spawn: cannot listen on {}: {e}", path.display()))?;
            let (reader, writer) =
                std::io::pipe().map_err(|e| format!("spawn: cannot create a pipe: {e}"))?;
            output::log_lines(reader, program.clone(), index, plan.line_limit)
                .map_err(|e| format!("spawn: cannot start a thread: {e}"))?;
            slots.push(Slot {
                index,
                running: Arc::new(Mutex::new(None)),
                path,
                listener: Some(listener),
                output: writer.into(),
            });
        }
        let backends = slots
            .iter()
            .map(|s| (Backend::unix(s.path.clone()), plan.per_process))
            .collect();
        let (changes, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            running: slots.iter().map(|s| Arc::clone(&s.running)).collect(),
            plan,
            program,
            stopping: AtomicBool::new(false),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            changes,
        });
        // From here on, dropping the supervisor stops whatever has started.
        let supervisor = Supervisor {
            shared: Arc::clone(&shared),
            _dir: dir,
        };
        for slot in slots {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("fcgi-spawn-{}", slot.index))
                .spawn(move || slot::run(shared, slot))
                .map_err(|e| format!("spawn: cannot start a thread: {e}"))?;
        }
        Ok((
            SpawnChanges {
                rx,
                _supervisor: supervisor,
            },
            backends,
        ))
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let shared = Arc::clone(&self.shared);
        shared.stopping.store(true, Ordering::SeqCst);
        {
            let _guard = shared.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
            shared.wake.notify_all();
        }
        shared.signal_all(exec::SIGTERM);
        let grace = shared.plan.grace;
        let killer = move || {
            let deadline = Instant::now() + grace;
            while shared.any_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if shared.any_running() {
                tracing::warn!(target: "tower_fastcgi::spawn", program = %shared.program, "FastCGI program still running {grace:?} after SIGTERM; sending SIGKILL");
                shared.signal_all(exec::SIGKILL);
            }
        };
        if std::thread::Builder::new()
            .name("fcgi-spawn-stop".into())
            .spawn(killer)
            .is_err()
        {
            // No thread for the grace period: do not leave the processes behind.
            self.shared.signal_all(exec::SIGKILL);
        }
    }
}

/// The supervisor as a discovery stream: the slots' joins and leaves. It owns the
/// supervisor, so the processes live exactly as long as the service's discovery
/// (which stops with the service's last clone).
pub(crate) struct SpawnChanges {
    rx: mpsc::UnboundedReceiver<Change>,
    _supervisor: Supervisor,
}

impl Stream for SpawnChanges {
    type Item = Result<Change, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|change| change.map(Ok))
    }
}
