//! The default of every [`FcgiServiceBuilder`](crate::FcgiServiceBuilder) setting, stated once.
//!
//! The builder starts from these values and each setter's documentation names the constant
//! it overrides. A unit test reads the table on `FcgiServiceBuilder` and the setters' docs
//! from the source and checks them against these constants, so the documentation cannot
//! drift from the code.

use std::time::Duration;

/// [`max_connections`](crate::FcgiServiceBuilder::max_connections): connections open at
/// once (busy + idle). Keep it at or below the backend's workers.
pub const MAX_CONNECTIONS: usize = 4;

/// [`idle_timeout`](crate::FcgiServiceBuilder::idle_timeout): how long an idle connection
/// is kept.
pub const IDLE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(15));

/// [`max_requests_per_connection`](crate::FcgiServiceBuilder::max_requests_per_connection):
/// unlimited.
pub const MAX_REQUESTS_PER_CONNECTION: Option<u32> = None;

/// [`keep_alive`](crate::FcgiServiceBuilder::keep_alive): FCGI_KEEP_CONN on.
pub const KEEP_ALIVE: bool = true;

/// [`queue_timeout`](crate::FcgiServiceBuilder::queue_timeout): wait for a busy pool
/// (then 503).
pub const QUEUE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(30));

/// [`connect_timeout`](crate::FcgiServiceBuilder::connect_timeout): (then 504; a refused
/// connection is 502 at once).
pub const CONNECT_TIMEOUT: Option<Duration> = Some(Duration::from_secs(5));

/// [`response_head_timeout`](crate::FcgiServiceBuilder::response_head_timeout) (then 504).
pub const RESPONSE_HEAD_TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));

/// [`read_timeout`](crate::FcgiServiceBuilder::read_timeout): longest silence between
/// records.
pub const READ_TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));

/// [`write_timeout`](crate::FcgiServiceBuilder::write_timeout): longest time without
/// request-body progress.
pub const WRITE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));

/// [`total_timeout`](crate::FcgiServiceBuilder::total_timeout): none.
pub const TOTAL_TIMEOUT: Option<Duration> = None;

/// [`max_request_body`](crate::FcgiServiceBuilder::max_request_body): 1 GiB (then 413).
pub const MAX_REQUEST_BODY: u64 = 1 << 30;

/// [`unknown_length_body`](crate::FcgiServiceBuilder::unknown_length_body): bytes of a
/// spooled body kept in memory before it spills to a temporary file.
pub const SPOOL_MEMORY: usize = 256 * 1024;

/// [`max_response_head`](crate::FcgiServiceBuilder::max_response_head) (then 502).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// [`max_params_size`](crate::FcgiServiceBuilder::max_params_size): encoded CGI
/// parameters (then 431).
pub const MAX_PARAMS_SIZE: usize = 64 * 1024;

/// [`pass_authorization`](crate::FcgiServiceBuilder::pass_authorization): on, as nginx
/// and Caddy.
pub const PASS_AUTHORIZATION: bool = true;

/// [`underscores_in_headers`](crate::FcgiServiceBuilder::underscores_in_headers): off.
pub const UNDERSCORES_IN_HEADERS: bool = false;

/// [`redirect_status`](crate::FcgiServiceBuilder::redirect_status): `REDIRECT_STATUS=200`.
pub const REDIRECT_STATUS: bool = true;

/// [`stderr_log_limit`](crate::FcgiServiceBuilder::stderr_log_limit): STDERR bytes logged
/// per request.
pub const STDERR_LOG_LIMIT: usize = 16 * 1024;

/// [`local_redirects`](crate::FcgiServiceBuilder::local_redirects): on (RFC 3875 §6.2.2).
pub const LOCAL_REDIRECTS: bool = true;

/// [`intercept_errors`](crate::FcgiServiceBuilder::intercept_errors): off (the
/// backend's error pages pass through, as nginx without `fastcgi_intercept_errors`).
pub const INTERCEPT_ERRORS: bool = false;

/// [`intercept_not_found`](crate::FcgiServiceBuilder::intercept_not_found): off (the
/// crate's 404s are plain text and never reach the error hook).
pub const INTERCEPT_NOT_FOUND: bool = false;

/// [`eject_after_failures`](crate::FcgiServiceBuilder::eject_after_failures): failures
/// in a row (with no success between) that take a backend of a fleet out of the
/// rotation. Three: one failure is noise, three in a row is a backend that is down.
pub const EJECT_AFTER_FAILURES: u32 = 3;

/// [`ejection_backoff`](crate::FcgiServiceBuilder::ejection_backoff): the first ejection's
/// length (before jitter); each further one in a row doubles it.
pub const EJECTION_BACKOFF: Duration = Duration::from_secs(1);

/// [`ejection_backoff`](crate::FcgiServiceBuilder::ejection_backoff): the longest
/// ejection (before jitter).
pub const EJECTION_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// [`route_when_all_ejected`](crate::FcgiServiceBuilder::route_when_all_ejected): with
/// every backend ejected, requests still go to them. On: ejections outlive the faults
/// that caused them, so "all out" usually means "some back already"; nginx does the
/// same when all its peers are down.
pub const ROUTE_WHEN_ALL_EJECTED: bool = true;

/// [`retry_budget`](crate::FcgiServiceBuilder::retry_budget): retries on another backend
/// earned per 100 successful requests (tower's `Budget` default is 20% too).
pub const RETRY_BUDGET_PERCENT: u32 = 20;

/// [`retry_budget`](crate::FcgiServiceBuilder::retry_budget): retries per second allowed
/// whatever the traffic (tower's default floor is 10 too).
pub const RETRY_BUDGET_MIN_PER_SEC: u32 = 10;

/// [`retry_non_idempotent`](crate::FcgiServiceBuilder::retry_non_idempotent): off, a
/// POST that may have run is not replayed (nginx's default).
pub const RETRY_NON_IDEMPOTENT: bool = false;

/// [`resolve_every`](crate::FcgiServiceBuilder::resolve_every): off, a `tcp://` name is
/// one backend resolved by the system at each connect (see the setter for why).
pub const RESOLVE_EVERY: Option<Duration> = None;

/// [`unserved_after`](crate::FcgiServiceBuilder::unserved_after): how long a request on
/// a new connection may go without a response byte, while the same backend has idle
/// connections, before the service concludes the connection waits for a worker that
/// one of its own idle connections holds.
pub const UNSERVED_AFTER: Option<Duration> = Some(Duration::from_secs(1));

/// How long a backend's connection cap stays lowered after the unserved check lowered
/// it; then the configured cap applies again (and is lowered again if it is still too
/// high). Not configurable.
pub(crate) const UNSERVED_CAP_HOLD: Duration = Duration::from_secs(60);

/// [`multiplex`](crate::FcgiServiceBuilder::multiplex): whether the service asks each
/// backend FCGI_GET_VALUES (`Multiplex::Auto`) by default, multiplexes those that
/// answer `FCGI_MPXS_CONNS=1` and caps the connections of those that state
/// `FCGI_MAX_CONNS`. Off (an opt-in) for now, for two reasons found in testing:
/// tokio-fastcgi 1.3 advertises `FCGI_MPXS_CONNS=1` but panics when two of a
/// connection's handlers write at once (its shared writer is taken with `try_lock`), so
/// its requests would hang until the response-head timeout under concurrency; and the
/// question costs each backend one more connection, and a single-process libfcgi
/// application one 500 ms wait. Turn it on for Go's `net/http/fcgi` and other
/// backends known to multiplex.
pub const MULTIPLEX_AUTO: bool = false;

/// Requests at once on one multiplexed connection when the backend states no
/// `FCGI_MAX_REQS` (Go's `net/http/fcgi` does not). With the default 4 connections per
/// backend that is 400 requests in flight before one waits, as HTTP/2's customary 100
/// streams per connection.
pub const MULTIPLEX_STREAMS: usize = 100;

/// [`multiplex_buffer`](crate::FcgiServiceBuilder::multiplex_buffer): unread response
/// bytes (STDOUT and STDERR) one request may have buffered in memory on a multiplexed
/// connection. FastCGI has no per-request flow control, so the connection's reader
/// cannot wait for one slow client without stalling every other request on it: STDOUT
/// beyond this goes to a temporary file. 1 MiB: sixteen 64 KiB records of lead.
pub const MULTIPLEX_BUFFER: usize = 1024 * 1024;

/// [`multiplex_spill`](crate::FcgiServiceBuilder::multiplex_spill): unread STDOUT bytes
/// one multiplexed request may have in its temporary file beyond the memory buffer;
/// a client further behind has its request aborted (a cut-off body). 64 MiB: a large
/// download to a slow client survives, and a thousand stalled clients cannot fill a
/// disk unnoticed (nginx's `proxy_max_temp_file_size` is 1 GiB, per request too).
pub const MULTIPLEX_SPILL: u64 = 64 * 1024 * 1024;

/// How long FCGI_GET_VALUES may take (connect included) before a backend counts as
/// "no multiplexing, no limits". Short, because the first request of a backend waits
/// for it; long enough for a loaded php-fpm to accept and answer on loopback.
/// Not configurable.
pub(crate) const MULTIPLEX_DISCOVERY_TIMEOUT: Duration = Duration::from_millis(500);

/// [`HealthCheck::interval`](crate::HealthCheck::interval): how often each backend is
/// probed once [`health_check`](crate::FcgiServiceBuilder::health_check) turns probes on
/// (they are off by default: passive health only).
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// [`HealthCheck::timeout`](crate::HealthCheck::timeout): how long one probe may take,
/// connecting included.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// [`HealthCheck::failures`](crate::HealthCheck::failures): failed probes in a row that
/// eject a backend (one late answer on a busy host is not an outage).
pub const HEALTH_CHECK_FAILURES: u32 = 2;

/// [`server_software`](crate::FcgiServiceBuilder::server_software): SERVER_SOFTWARE.
pub const SERVER_SOFTWARE: &str = concat!("tower-fastcgi/", env!("CARGO_PKG_VERSION"));

/// [`script_extensions`](crate::FcgiServiceBuilder::script_extensions) in document-root mode.
pub const SCRIPT_EXTENSIONS: &[&str] = &["php"];

/// [`index_files`](crate::FcgiServiceBuilder::index_files) in document-root mode.
pub const INDEX_FILES: &[&str] = &["index.php"];

/// [`follow_symlinks_outside_root`](crate::FcgiServiceBuilder::follow_symlinks_outside_root):
/// off, such scripts are 404.
pub const FOLLOW_SYMLINKS_OUTSIDE_ROOT: bool = false;

/// Known-length request bodies up to this size are read before connecting, so the request
/// leaves in one write and can be replayed on a stale connection. Not configurable.
pub(crate) const READ_AHEAD: usize = 64 * 1024;

/// Body bytes of a response to a bodyless request (HEAD, 204, 304) read and dropped to
/// keep the connection reusable; beyond this the connection is closed. Not configurable.
pub(crate) const BODYLESS_DRAIN_LIMIT: usize = 256 * 1024;

/// A size as the docs write it: `64 KiB`, `1 GiB`, `300 bytes`.
#[cfg(test)]
pub(crate) fn render_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// A timeout as the docs write it: `15 s`, `none`.
#[cfg(test)]
pub(crate) fn render_timeout(timeout: Option<Duration>) -> String {
    match timeout {
        None => "none".to_owned(),
        Some(d) if d.subsec_nanos() == 0 => format!("{} s", d.as_secs()),
        Some(d) => format!("{} ms", d.as_millis()),
    }
}

/// On or off, as the docs write it.
#[cfg(test)]
pub(crate) fn render_switch(on: bool) -> String {
    if on { "on" } else { "off" }.to_owned()
}

// ---- PhpSite ----

/// [`front_controller`](crate::PhpSiteBuilder::front_controller): `/index.php` (used when
/// it exists), the pretty-URL entry point of WordPress, Laravel, Symfony and Drupal.
#[cfg(feature = "php")]
pub const FRONT_CONTROLLER: Option<&str> = Some("/index.php");

/// [`front_controller_for_missing_scripts`](crate::PhpSiteBuilder::front_controller_for_missing_scripts):
/// off, so a request for a missing `*.php` is a 404 without running PHP (nginx).
#[cfg(feature = "php")]
pub const FRONT_CONTROLLER_FOR_MISSING_SCRIPTS: bool = false;

/// [`allow_dotfiles`](crate::PhpSiteBuilder::allow_dotfiles): off (`.git`, `.env` are
/// 404; `/.well-known/` is always served).
#[cfg(feature = "php")]
pub const ALLOW_DOTFILES: bool = false;

/// [`precompressed`](crate::PhpSiteBuilder::precompressed): on (`file.br`/`file.gz` next
/// to a static file are served to clients that accept them).
#[cfg(feature = "php")]
pub const PRECOMPRESSED: bool = true;

// ---- spawned processes (`SpawnConfig`) ----

/// [`procs`](crate::SpawnConfig::procs): processes started, each with its own socket
/// (lighttpd's `min-procs`/`max-procs` default, and this crate's `max_connections`).
#[cfg(feature = "spawn")]
pub const SPAWN_PROCS: usize = 4;

/// [`allow_env`](crate::SpawnConfig::allow_env): the variables a spawned program
/// inherits from the parent. Nothing else leaks in (secrets, `PHP_*` settings of the
/// shell that started the gateway); `PATH` lets CGI scripts find their interpreters.
#[cfg(feature = "spawn")]
pub const SPAWN_ALLOW_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

/// [`restart_backoff`](crate::SpawnConfig::restart_backoff): the wait before the second
/// restart of a failing process in a row (the first is at once); each further one doubles it.
#[cfg(feature = "spawn")]
pub const SPAWN_RESTART_BACKOFF: Duration = Duration::from_millis(100);

/// [`restart_backoff`](crate::SpawnConfig::restart_backoff): the longest wait between
/// restarts.
#[cfg(feature = "spawn")]
pub const SPAWN_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// [`crash_loop`](crate::SpawnConfig::crash_loop): failures of one process within
/// [`SPAWN_CRASH_LOOP_WINDOW`] that stop its restarts.
#[cfg(feature = "spawn")]
pub const SPAWN_CRASH_LOOP_FAILURES: u32 = 5;

/// [`crash_loop`](crate::SpawnConfig::crash_loop): the window failures are counted in.
#[cfg(feature = "spawn")]
pub const SPAWN_CRASH_LOOP_WINDOW: Duration = Duration::from_secs(10);

/// [`crash_loop`](crate::SpawnConfig::crash_loop): how long a crash-looping process
/// stays stopped before one more start is tried.
#[cfg(feature = "spawn")]
pub const SPAWN_CRASH_LOOP_RETRY: Duration = Duration::from_secs(30);

/// [`grace_period`](crate::SpawnConfig::grace_period): time between SIGTERM and SIGKILL
/// at shutdown.
#[cfg(feature = "spawn")]
pub const SPAWN_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// [`log_line_limit`](crate::SpawnConfig::log_line_limit): bytes of one line of a spawned
/// program's stdout/stderr logged; the rest of the line is counted, not kept.
#[cfg(feature = "spawn")]
pub const SPAWN_LOG_LINE_LIMIT: usize = 4096;

/// A process that exits cleanly sooner than this after its start is restarted only
/// after the rest of this time: a program that exits with status 0 at once is not
/// respawned in a hot loop. Not configurable.
#[cfg(feature = "spawn")]
pub(crate) const SPAWN_MIN_UPTIME: Duration = Duration::from_millis(100);

// ---- FcgiAuthorizerLayer ----

/// [`cache_capacity`](crate::FcgiAuthorizerLayer::cache_capacity): 10 000 remembered allow
/// decisions at most (when [`cache_allowed`](crate::FcgiAuthorizerLayer::cache_allowed) is
/// on; the cache is off by default). A full cache drops expired entries, then stops
/// remembering until some expire.
pub const AUTHORIZER_CACHE_CAPACITY: usize = 10_000;
