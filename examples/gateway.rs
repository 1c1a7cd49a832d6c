//! A standalone HTTP → FastCGI gateway driven by flags, to put in front of existing
//! backends (and the gateway our benchmarks measure against nginx).
//!
//! ```text
//! cargo run --release --example gateway -- --listen 127.0.0.1:8080 \
//!     --app /fcgi-test=tcp://127.0.0.1:9500 \
//!     --php /=unix:/run/php/php-fpm.sock,root=/var/www/html \
//!     --cgi /cgi-bin=unix:/run/fcgiwrap.socket,root=/usr/lib/cgi-bin
//! ```
//!
//! Mounts (repeatable):
//! - `--app PREFIX=BACKEND[,OPTS]`: application mode (SCRIPT_NAME = PREFIX, PATH_INFO = rest);
//! - `--php PREFIX=BACKEND,root=DIR[,OPTS]`: a PHP site ([`PhpSite`]): static files from
//!   DIR, `.php` through FastCGI, `index.php` for directories, `/index.php` as front
//!   controller for paths matching no file, dotfiles refused;
//! - `--cgi PREFIX=BACKEND,root=DIR[,OPTS]`: document-root mode, every file is a script;
//! - `--filter PREFIX=BACKEND,root=DIR[,OPTS]`: DIR's files through a FastCGI *Filter*
//!   application ([`FcgiFilter`](tower_fastcgi::FcgiFilter)): each file is streamed to it
//!   as FCGI_DATA (with FCGI_DATA_LENGTH and FCGI_DATA_LAST_MOD) and its output is the
//!   response; `.php` files and dotfiles are never sent, directories need their
//!   trailing slash.
//! - `--scgi PREFIX=BACKEND[,OPTS]` and `--uwsgi PREFIX=BACKEND[,OPTS]`: application mode
//!   as `--app`, over SCGI (flup's or uWSGI's `--scgi-socket`) or the uwsgi protocol
//!   (uWSGI's `--uwsgi-socket`). One connection per request (the protocols end a
//!   response by closing), so only `backend=`, `conns=` (connections in flight per
//!   backend, default 4; more requests queue), `resolve=` and `script=` apply.
//!
//! BACKEND is `tcp://HOST:PORT`, `unix:PATH`, or `spawn:PROGRAM`: the gateway starts
//! PROGRAM itself (php-cgi, fcgiwrap, a flup or Go app serving fd 0), `procs=N`
//! processes (default 4) each on a Unix socket of its own, restarts them when they exit
//! and stops them (SIGTERM, then SIGKILL) when it shuts down; `env=NAME=VALUE`
//! (repeatable) sets the program's environment (otherwise only PATH, LANG, LC_ALL, TZ),
//! and `conns=N` is then the connections per process (default 1, or
//! `PHP_FCGI_CHILDREN`). OPTS (comma-separated):
//! `backend=BACKEND` (repeatable: more backends for the mount, balanced by load, with
//! passive health and retries on another backend), `conns=N` (pool size *per backend*,
//! keep it ≤ that backend's workers), `keepalive=0`, `resolve=SECS` (every address of a
//! `tcp://NAME:PORT` backend is a backend, the name re-resolved every SECS seconds),
//! `health=values` or `health=/fpm-ping` (active health checks every 10 s: FCGI_GET_VALUES,
//! or a request to php-fpm's `ping.path`), `mpx=auto|on|on:N|off` (multiplexing: `auto`
//! asks each backend FCGI_GET_VALUES once, multiplexes it when it answers
//! FCGI_MPXS_CONNS=1 (Go's net/http/fcgi) and caps its connections at its
//! FCGI_MAX_CONNS; `on` multiplexes without asking, N (default 100) requests per
//! connection, for flup's `multiplexed=True`; never for libfcgi apps; default off),
//! `index=a.php:b.php`, `script=/path/front.php` (--app: fixed SCRIPT_FILENAME);
//! for --php also `deny=/data:/conf` (refused path prefixes), `front=/index.php` or
//! `front=none`, `sendfile=/protected:/srv/private` (X-Accel-Redirect prefix and directory).
//! An option the mount does not understand is a usage error (exit 2) naming it.
//!
//! Access control (repeatable): `--auth PREFIX=BACKEND[,OPTS]` asks the FastCGI
//! *authorizer* at BACKEND (FastCGI's Authorizer role, as Apache's mod_authnz_fcgi and
//! lighttpd's `"mode" => "authorizer"`) about every request whose path is under PREFIX,
//! whichever mount serves it (matched after percent-decoding and resolving `..`). Its
//! `Status: 200` lets the request through, its `Variable-NAME: value` fields becoming CGI
//! variables `NAME` of the mount's backend; any other answer is the client's response;
//! an authorizer that is down, slow or broken is a 502/503/504, never a pass. OPTS:
//! `backend=`, `conns=`, `keepalive=0`, `resolve=` as for mounts, and `script=FILE`
//! (SCRIPT_FILENAME, for an authorizer script run by php-fpm). A single-process
//! authorizer (a Perl FCGI script) serves one connection at a time: give it `conns=1`.
//!
//! ```text
//! --auth /admin=unix:/run/auth.sock,conns=1 --php /=unix:/run/php/php-fpm.sock,root=/srv/app
//! ```
//!
//! ```text
//! --php /=tcp://10.0.0.1:9000,backend=tcp://10.0.0.2:9000,backend=unix:/run/php/php-fpm.sock,root=/srv/app,conns=8
//! --php /=unix:/run/php/php-fpm.sock,root=/srv/wiki,deny=/data:/conf:/bin:/inc:/vendor,index=doku.php
//! --php /=spawn:/usr/bin/php-cgi,procs=4,root=./www,env=PHP_FCGI_MAX_REQUESTS=500
//! ```
//! ## Serving, and the defaults
//!
//! One port serves HTTP/1.1 and HTTP/2: cleartext HTTP/2 by prior knowledge (the client
//! starts with the connection preface, as `curl --http2-prior-knowledge` does), and with
//! `--tls-cert FILE --tls-key FILE` (PEM: the chain, then the key) TLS through rustls,
//! where ALPN picks `h2` or `http/1.1`; backends then see `HTTPS=on`. A request body with
//! no length (HTTP/2 DATA frames, HTTP/1.1 chunked) reaches the backend with an exact
//! CONTENT_LENGTH: the library spools it first.
//!
//! On SIGTERM or Ctrl-C (SIGINT) the gateway stops accepting (the port refuses new
//! connections at once), lets every request in flight finish (HTTP/1: the connection
//! closes after its response, idle keep-alive connections at once; HTTP/2: GOAWAY, open
//! streams run to their end), waits for that at most `--grace` seconds, then closes what
//! is left, writes out the access log and exits 0. Pooled backend connections close with
//! their services, spawned processes get SIGTERM.
//!
//! | what | default | flag | why |
//! |---|---|---|---|
//! | listen | `127.0.0.1:8080` | `--listen HOST:PORT` | loopback unless told |
//! | runtime | current-thread on ≤ 2 cores, else one worker per core | `--threads N` (1: current-thread) | see below |
//! | graceful shutdown | 30 s (`serve::DEFAULT_GRACE`) | `--grace SECS` (0: cut at once) | long enough for a slow PHP page; systemd's `TimeoutStopSec` default is 90 s |
//! | access log | stderr, buffered | `--access-log PATH\|-\|off` | combined format + seconds, 64 KiB buffer, flushed every second, never blocks a request (`support/access_log.rs`) |
//! | other logs | `info` (`warn` with `--quiet`) | `--log FILTER`, else `RUST_LOG` | per-request tracing (tower-http's `TraceLayer`) only when the filter enables debug |
//! | `--quiet` | off | `--quiet` | no access log and warn-level logs (benchmarks) |
//! | HTTP/1 read buffer | 64 KiB per connection (`serve::MAX_READ_BUF`) | — | bounds memory per upload; a larger request head is a 431 |
//! | HTTP/2 streams | 128 per connection (`H2_MAX_CONCURRENT_STREAMS`) | — | nginx's `http2_max_concurrent_streams` |
//! | HTTP/2 windows | 64 KiB per stream, 1 MiB per connection | — | the same bound per upload as HTTP/1 |
//! | HTTP/2 header list, frame | 64 KiB, 16 KiB | — | the HTTP/1 head limit; the protocol's minimum frame |
//! | HTTP/2 send buffer | 64 KiB per stream | — | a slow client holds little of a response |
//! | routing | longest mount prefix, stripped as axum's `nest_service` strips (`support/mounts.rs`) | — | a literal prefix table costs a fraction of an axum `Router` per request |
//! | allocator | glibc malloc; **production builds: `--features jemalloc`** | `cargo build --release --example gateway --features jemalloc` | jemalloc with background purge hands memory back after a burst and saves ~4,000 instructions per tiny GET (BENCHMARKS.md); `bench/run.sh` builds it so |
//! | TLS | off | `--tls-cert FILE --tls-key FILE` | rustls (ring), TLS 1.2 and 1.3, ALPN `h2`, `http/1.1`; 10 s handshake timeout |
//!
//! The runtime default, measured (2 cores, tiny GET through bench_responder, wrk -t1,
//! 4 s runs, the default access log on, two repetitions; the machine was shared, load
//! average 7–10, so every number is inflated and noisy, only the pairing means much):
//!
//! | c | `--threads 1`: µs CPU/request, req/s | `--threads 2`: µs CPU/request, req/s |
//! |---|---|---|
//! | 16 | 60.9 / 66.4, 5.1k / 4.9k | 64.7 / 71.8, 6.4k / 5.0k |
//! | 64 | 69.5 / 72.6, 6.4k / 6.7k | 72.4 / 71.2, 9.1k / 6.5k |
//! | 256 | 87.2 / 66.0, 7.2k / 8.1k | 76.9 / 76.7, 6.2k / 7.2k |
//!
//! No configuration file: every option is a flag or a mount's `,OPT=VALUE`, and a
//! service manager's unit file or a shell script holds a long command line well enough.

use std::process::ExitCode;

use axum::response::IntoResponse;
use tower::util::Either;
use tower::{Layer, ServiceExt};
use tower_http::trace::TraceLayer;

#[path = "support/access_log.rs"]
mod access_log;
#[path = "support/alloc.rs"]
mod alloc;
#[path = "support/gateway_auth.rs"]
mod gateway_auth;
#[path = "support/listen.rs"]
mod listen;
#[path = "support/mount.rs"]
mod mount;
#[path = "support/mounts.rs"]
mod mounts;
#[path = "support/runtime.rs"]
mod runtime;
#[path = "support/serve.rs"]
mod serve;
#[path = "support/tls.rs"]
mod tls;
use mount::{Kind, Mount, parse_mount};

struct Args {
    listen: String,
    mounts: Vec<Mount>,
    /// `--auth` options, in the order given.
    auths: Vec<Mount>,
    quiet: bool,
    /// `--access-log PATH|-|off`.
    access_log: String,
    /// `--log FILTER`: the tracing filter (RUST_LOG's syntax).
    log: Option<String>,
    threads: usize,
    /// `--grace SECS`: how long in-flight requests get at shutdown.
    grace: std::time::Duration,
    /// `--tls-cert FILE` and `--tls-key FILE`, both or neither.
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut mounts = Vec::new();
    let mut auths = Vec::new();
    let mut quiet = false;
    let mut access_log = None;
    let mut log = None;
    let mut grace = serve::DEFAULT_GRACE;
    let (mut tls_cert, mut tls_key) = (None, None);
    let mut threads = default_threads();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--app" => mounts.push(parse_mount(Kind::App, &value("--app")?)?),
            "--php" => mounts.push(parse_mount(Kind::Php, &value("--php")?)?),
            "--cgi" => mounts.push(parse_mount(Kind::Cgi, &value("--cgi")?)?),
            "--filter" => mounts.push(parse_mount(Kind::Filter, &value("--filter")?)?),
            "--auth" => auths.push(parse_mount(Kind::Auth, &value("--auth")?)?),
            "--scgi" => mounts.push(parse_mount(Kind::Scgi, &value("--scgi")?)?),
            "--uwsgi" => mounts.push(parse_mount(Kind::Uwsgi, &value("--uwsgi")?)?),
            "--quiet" => quiet = true,
            "--access-log" => access_log = Some(value("--access-log")?),
            "--log" => log = Some(value("--log")?),
            "--grace" => {
                let secs = value("--grace")?;
                grace = secs
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("--grace {secs}: expected seconds (0 or more)"))?;
            }
            "--tls-cert" => tls_cert = Some(value("--tls-cert")?.into()),
            "--tls-key" => tls_key = Some(value("--tls-key")?.into()),
            "--threads" => {
                let n = value("--threads")?;
                threads = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--threads {n}: expected a positive number"))?;
            }
            "-h" | "--help" => {
                return Err("usage: gateway --listen ADDR [--app|--php|--cgi|--filter|--scgi|--uwsgi PREFIX=BACKEND[,OPTS]]... [--auth PREFIX=BACKEND[,OPTS]]... [--threads N] [--grace SECS] [--tls-cert FILE --tls-key FILE] [--access-log PATH|-|off] [--log FILTER] [--quiet]\n\
                     BACKEND: tcp://HOST:PORT, unix:PATH or spawn:PROGRAM (started and supervised here)\n\
                     --scgi, --uwsgi: application mode as --app over SCGI or uwsgi (tcp:// or unix: only;\n\
                     one connection per request, so only backend=, conns=, resolve=, script= apply)\n\
                     OPTS: backend=BACKEND (repeatable: balance over several backends), conns=N (per backend),\n\
                     procs=N, env=NAME=VALUE (spawn:),\n\
                     keepalive=0, resolve=SECS (re-resolve tcp:// names), health=values|/PING_PATH, mpx=auto|on[:N]|off,\n\
                     index=A:B, script=FILE (--app),\n\
                     root=DIR (--php, --cgi, --filter),\n\
                     deny=/A:/B, front=/index.php|none, sendfile=/URI:DIR (--php)\n\
                     --auth: a FastCGI authorizer for every path under PREFIX; OPTS backend=, conns=, keepalive=0,\n\
                     resolve=, health=, script=FILE".into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if mounts.is_empty() {
        return Err(
            "no mounts: add --app, --php, --cgi, --filter, --scgi or --uwsgi (try --help)".into(),
        );
    }
    if tls_cert.is_some() != tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    Ok(Args {
        listen,
        mounts,
        auths,
        quiet,
        // --quiet is "no access log" unless one is asked for by name.
        access_log: access_log.unwrap_or_else(|| if quiet { "off" } else { "-" }.to_owned()),
        log,
        threads,
        grace,
        tls_cert,
        tls_key,
    })
}

/// One thread (a current-thread runtime) on a machine of one or two cores, else one per
/// core. On two cores the backend needs the other one; measured here (table above) a
/// second runtime thread bought no requests/s that held across runs and cost as much
/// CPU per request or more.
fn default_threads() -> usize {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        ..=2 => 1,
        cores => cores,
    }
}

fn main() -> ExitCode {
    runtime::main("gateway", parse_args(), |args| args.threads, serve)
}

async fn serve(args: Args) -> ExitCode {
    // --log, else RUST_LOG, else info (warn with --quiet).
    let filter = match &args.log {
        Some(filter) => tracing_subscriber::EnvFilter::try_new(filter),
        None => tracing_subscriber::EnvFilter::try_from_default_env().or_else(|_| {
            tracing_subscriber::EnvFilter::try_new(if args.quiet { "warn" } else { "info" })
        }),
    };
    let filter = match filter {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!("gateway: --log / RUST_LOG: {err}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let access_log = match access_log::AccessLog::open(&args.access_log) {
        Ok(log) => log,
        Err(msg) => {
            eprintln!("gateway: {msg}");
            return ExitCode::from(2);
        }
    };

    let mut app = mounts::Mounts::new();
    for mount in &args.mounts {
        app = match mount.mount(app) {
            Ok(app) => app,
            Err(msg) => {
                eprintln!("gateway: {msg}");
                return ExitCode::from(2);
            }
        };
        tracing::info!(prefix = %if mount.prefix.is_empty() { "/" } else { &mount.prefix }, backend = %mount.backend, more_backends = mount.more_backends.len(), kind = ?mount.kind, "mounted");
    }
    let mut guards = Vec::new();
    for auth in &args.auths {
        match auth.authorizer() {
            Ok(authorizer) => guards.push(gateway_auth::Guard {
                prefix: auth.prefix.clone(),
                authorizer,
            }),
            Err(msg) => {
                eprintln!("gateway: --auth {}: {msg}", auth.prefix);
                return ExitCode::from(2);
            }
        }
        tracing::info!(prefix = %if auth.prefix.is_empty() { "/" } else { &auth.prefix }, backend = %auth.backend, "authorizer");
    }
    let debug = tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG;
    // Without layers the mount table is served as it is. Layers go on top of it as
    // `Either`s (a layer that is off costs a match), boxed once for the serve loop: one
    // allocation more per request, only when some layer is on.
    let layered = !guards.is_empty() || debug || access_log.is_some();
    let stack = layered.then(|| {
        let guarded = if guards.is_empty() {
            Either::Right(app.clone())
        } else {
            Either::Left(gateway_auth::guard(app.clone(), &guards))
        };
        // Per-request tracing spans and events cost a few µs each: only when debug is on.
        let traced = if debug {
            Either::Left(
                TraceLayer::new_for_http()
                    .layer(guarded)
                    .map_response(IntoResponse::into_response),
            )
        } else {
            Either::Right(guarded)
        };
        // Outermost, so the line has the status the client got (an authorizer's too).
        let logged = match &access_log {
            Some(log) => Either::Left(
                log.layer()
                    .layer(traced)
                    .map_response(IntoResponse::into_response),
            ),
            None => Either::Right(traced),
        };
        serve::BoxedApp::new(logged)
    });

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match tls::acceptor(cert, key) {
            Ok(acceptor) => Some(acceptor),
            Err(msg) => {
                eprintln!("gateway: {msg}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // TCP_NODELAY on every client connection, as nginx does on keep-alive connections.
    let listener = match listen::listen(&args.listen).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("gateway: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    // The bound address, not the flag: `--listen 127.0.0.1:0` says which port it got.
    let bound = listener
        .local_addr()
        .map_or_else(|_| args.listen.clone(), |addr| addr.to_string());
    tracing::info!("listening on {scheme}://{bound} (HTTP/1.1 and HTTP/2)");
    let options = serve::Options {
        tls,
        grace: args.grace,
    };
    let stopped = match stack {
        Some(stack) => serve::serve(listener, stack, options, shutdown_signal()).await,
        None => serve::serve(listener, app, options, shutdown_signal()).await,
    };
    tracing::info!(?stopped, "stopped");
    // The server (and with it every service and its pooled backend connections) is
    // dropped by now; spawned programs have been sent SIGTERM. Give them a moment to
    // finish before the process (and with it the SIGKILL-after-grace thread) is gone; the
    // parent-death signal covers the rest. The moment also lets an HTTP/2 stream's task,
    // which may outlive its connection's by a poll, drop its body and queue its line.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    if let Some(log) = access_log {
        let dropped = log.dropped();
        log.finish();
        if dropped > 0 {
            tracing::warn!(dropped, "access log: lines dropped in all (queue full)");
        }
    }
    ExitCode::SUCCESS
}

/// SIGTERM (service managers, `docker stop`, `kill`) or Ctrl-C.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!("cannot watch SIGTERM ({err}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
