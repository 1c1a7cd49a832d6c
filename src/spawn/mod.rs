//! Starting and supervising the FastCGI application itself (feature `spawn`): what
//! mod_fcgid, lighttpd's `bin-path` and h2o's `fastcgi.spawn` do, so that a PHP
//! directory is served with nothing but `php-cgi` installed.
//!
//! [`FcgiServiceBuilder::spawn`](crate::FcgiServiceBuilder::spawn) takes a
//! [`SpawnConfig`]. At build the supervisor creates a private directory (mode 0700)
//! with one Unix socket per process, and starts each process with its socket as fd 0
//! (`FCGI_LISTENSOCK_FILENO`), an environment that holds only what the configuration
//! allows, its own session and process group, and (Linux) SIGTERM as its parent-death
//! signal, so the processes go when the gateway goes, even when it is killed. Their
//! stdout and stderr are logged line by line (target `tower_fastcgi::spawn`).
//!
//! Each process is one backend of the service's fleet, capped at
//! [`connections_per_process`](SpawnConfig::connections_per_process) connections: 1
//! for php-cgi without `PHP_FCGI_CHILDREN` (it serves one connection at a time, and a
//! second kept-alive connection would wait behind the first), `k` with
//! `PHP_FCGI_CHILDREN=k`. The fleet balances them, ejects a failing one, and counts
//! each in [`FcgiService::backend_stats`](crate::FcgiService::backend_stats).
//!
//! # Why one socket per process
//!
//! spawn-fcgi shares one socket between all processes; mod_fcgid and lighttpd give
//! each its own. With its own socket each process is a fleet member of its own: the
//! connection cap is per process (so a single-request php-cgi never gets two
//! connections), the balancer sees each process's load, and a dead or crash-looping
//! process leaves the rotation alone. The supervisor keeps every socket open across
//! restarts, so connections made while a process restarts wait in the backlog for the
//! next one instead of being refused.
//!
//! # Restarts
//!
//! - Exit status 0 is a retirement on purpose (php-cgi after `PHP_FCGI_MAX_REQUESTS`):
//!   the process is started again at once and nothing counts it as a failure. The
//!   kept-alive connection it closed is found stale by the next request, which is
//!   retried once on a new connection: clients see nothing.
//! - Any other end (a status, a signal, a start that fails) is a failure: the first in
//!   a row restarts at once, the next after a growing [backoff](SpawnConfig::restart_backoff),
//!   while the process is out of the fleet.
//! - A [crash loop](SpawnConfig::crash_loop) (5 failures within 10 s) stops the
//!   restarts for a while, logged at `error` with the reason; its socket is closed and
//!   its backend leaves the fleet, so with every process down the mount answers 503
//!   at once, until a later try succeeds.
//!
//! # Shutdown
//!
//! The supervisor lives as long as the service: when its last clone is dropped (the
//! gateway's SIGTERM or Ctrl-C ends the server, which drops it), each process group
//! gets SIGTERM, and SIGKILL after the [grace period](SpawnConfig::grace_period).
//! Dropping never blocks: the grace period runs on a thread of its own. Whatever a
//! process leaves behind when it exits (workers, CGI scripts) is killed with its group.

mod config;
mod exec;
mod output;
mod policy;
mod slot;
mod supervisor;

pub use config::SpawnConfig;
pub(crate) use supervisor::Supervisor;
