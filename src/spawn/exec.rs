//! The system calls of spawning: the child's setup between fork and exec, signals to
//! process groups, and waiting for an exit without reaping it. The only `unsafe` code
//! of the crate lives here, each block with the reason it is sound.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// SIGTERM: what shutdown sends first, and the parent-death signal.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
/// SIGKILL: after the grace period, and for what a dead process leaves behind.
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// What one start of the program needs.
pub(crate) struct Launch<'a> {
    pub(crate) program: &'a Path,
    pub(crate) args: &'a [OsString],
    pub(crate) env: &'a [(OsString, OsString)],
    pub(crate) current_dir: Option<&'a Path>,
    /// Becomes fd 0 (FCGI_LISTENSOCK_FILENO).
    pub(crate) listener: OwnedFd,
    /// Becomes fds 1 and 2.
    pub(crate) output: OwnedFd,
}

/// Starts the program in a session (and process group) of its own whose id is its
/// pid, with the listening socket as fd 0, `output` as stdout and stderr, exactly the
/// given environment, and (Linux) SIGTERM as its parent-death signal.
pub(crate) fn start(launch: Launch<'_>) -> io::Result<Child> {
    let mut cmd = Command::new(launch.program);
    cmd.args(launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(n, v)| (n, v)))
        .stdin(Stdio::from(launch.listener))
        .stdout(Stdio::from(launch.output.try_clone()?))
        .stderr(Stdio::from(launch.output));
    if let Some(dir) = launch.current_dir {
        cmd.current_dir(dir);
    }
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe functions may be called. It calls setsid, prctl and getppid
    // (all async-signal-safe system calls), allocates nothing (io::Error::last_os_error
    // and from_raw_os_error build an error from an integer) and touches no lock.
    unsafe {
        cmd.pre_exec(move || child_setup(parent));
    }
    cmd.spawn()
}

/// Runs in the child between fork and exec (see the SAFETY note in [`start`]).
fn child_setup(parent: u32) -> io::Result<()> {
    // A session of its own: a process group whose id is the pid, so that one signal
    // reaches the program and whatever it forks (php-cgi's workers, fcgiwrap's CGI
    // scripts); and no controlling terminal, so a Ctrl-C in the gateway's terminal
    // reaches the gateway, which then stops the children in order.
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    #[cfg(target_os = "linux")]
    {
        // SIGTERM when the thread that started us dies (the supervisor thread lives
        // as long as the process it watches, and dies with the parent process, also
        // when it is killed or aborts). SIGTERM rather than SIGKILL: php-cgi with
        // PHP_FCGI_CHILDREN forwards it to its workers, SIGKILL would orphan them.
        // SAFETY: prctl(PR_SET_PDEATHSIG, sig) reads only its integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // The parent may have died between fork and prctl: then no signal will come.
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } as u32 != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
    Ok(())
}

/// Sends `signal` to the process group `pgid` (a started program's pid). The caller
/// makes sure the group's leader has not been reaped yet, so the id cannot have been
/// reused by an unrelated group.
pub(crate) fn signal_group(pgid: u32, signal: i32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions; a group that is gone is ESRCH.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Blocks until the child `pid` has exited, without reaping it (WNOWAIT): its pid, and
/// so its process group id, stays reserved until `Child::wait` reaps it.
pub(crate) fn wait_exited(pid: u32) -> io::Result<()> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: siginfo_t is plain data for which all-zero bytes are a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
        let rc = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
