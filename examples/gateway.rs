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
//! or a request to php-fpm's `ping.path`), `mpx=auto|off` (ask each backend FCGI_GET_VALUES
//! once and cap its pool at its FCGI_MAX_CONNS; default off),
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
//! The gateway stops on SIGTERM or Ctrl-C (SIGINT); spawned processes go with it.
//! `--threads N` sets the runtime's worker threads (default: one per core; 1 is a
//! current-thread runtime, best when the backend shares a small machine); `--quiet` turns
//! off per-request logging (for benchmarks).

use std::process::ExitCode;

use axum::Router;
use tower_http::trace::TraceLayer;

#[path = "support/alloc.rs"]
mod alloc;
#[path = "support/gateway_auth.rs"]
mod gateway_auth;
#[path = "support/listen.rs"]
mod listen;
#[path = "support/mount.rs"]
mod mount;
#[path = "support/runtime.rs"]
mod runtime;
#[path = "support/serve.rs"]
mod serve;
use mount::{Kind, Mount, parse_mount};

struct Args {
    listen: String,
    mounts: Vec<Mount>,
    /// `--auth` options, in the order given.
    auths: Vec<Mount>,
    quiet: bool,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut mounts = Vec::new();
    let mut auths = Vec::new();
    let mut quiet = false;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
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
            "--threads" => {
                let n = value("--threads")?;
                threads = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--threads {n}: expected a positive number"))?;
            }
            "-h" | "--help" => {
                return Err("usage: gateway --listen ADDR [--app|--php|--cgi|--filter|--scgi|--uwsgi PREFIX=BACKEND[,OPTS]]... [--auth PREFIX=BACKEND[,OPTS]]... [--threads N] [--quiet]\n\
                     BACKEND: tcp://HOST:PORT, unix:PATH or spawn:PROGRAM (started and supervised here)\n\
                     --scgi, --uwsgi: application mode as --app over SCGI or uwsgi (tcp:// or unix: only;\n\
                     one connection per request, so only backend=, conns=, resolve=, script= apply)\n\
                     OPTS: backend=BACKEND (repeatable: balance over several backends), conns=N (per backend),\n\
                     procs=N, env=NAME=VALUE (spawn:),\n\
                     keepalive=0, resolve=SECS (re-resolve tcp:// names), health=values|/PING_PATH, mpx=auto|off,\n\
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
    Ok(Args {
        listen,
        mounts,
        auths,
        quiet,
        threads,
    })
}

fn main() -> ExitCode {
    runtime::main("gateway", parse_args(), |args| args.threads, serve)
}

async fn serve(args: Args) -> ExitCode {
    let default_filter = if args.quiet {
        "warn"
    } else {
        "info,tower_http=debug"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .init();

    let mut app = Router::new();
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
    app = gateway_auth::guard(app, &guards);
    if !args.quiet {
        app = app.layer(TraceLayer::new_for_http());
    }

    // TCP_NODELAY on every client connection, as nginx does on keep-alive connections.
    let listener = match listen::listen(&args.listen).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("gateway: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("listening on http://{}", args.listen);
    let code = tokio::select! {
        () = serve::serve_http1(listener, app) => ExitCode::FAILURE,
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            ExitCode::SUCCESS
        }
    };
    // The server (and with it every service) is dropped by now; spawned programs have
    // been sent SIGTERM. Give them a moment to finish before the process (and with it
    // the SIGKILL-after-grace thread) is gone; the parent-death signal covers the rest.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    code
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
