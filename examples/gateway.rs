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
//! - `--cgi PREFIX=BACKEND,root=DIR[,OPTS]`: document-root mode, every file is a script.
//!
//! BACKEND is `tcp://HOST:PORT` or `unix:PATH`. OPTS (comma-separated):
//! `conns=N` (pool size, keep it ≤ the backend's workers), `keepalive=0`,
//! `index=a.php:b.php`, `script=/path/front.php` (--app: fixed SCRIPT_FILENAME);
//! for --php also `deny=/data:/conf` (refused path prefixes), `front=/index.php` or
//! `front=none`, `sendfile=/protected:/srv/private` (X-Accel-Redirect prefix and directory).
//!
//! ```text
//! --php /=unix:/run/php/php-fpm.sock,root=/srv/wiki,deny=/data:/conf:/bin:/inc:/vendor,index=doku.php
//! ```
//! `--quiet` turns off per-request logging (for benchmarks).

use std::process::ExitCode;

use axum::Router;
use tower_fastcgi::{Backend, Builder, ConnectionInfo, FcgiService, PhpSite};
use tower_http::trace::TraceLayer;

#[derive(Debug)]
enum Kind {
    App,
    Php,
    Cgi,
}

#[derive(Debug)]
struct Mount {
    kind: Kind,
    prefix: String,
    backend: Backend,
    options: Vec<(String, String)>,
}

impl Mount {
    fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Pool size and keep-alive options shared by every kind of mount.
    fn tune(&self, mut b: Builder) -> Result<Builder, String> {
        if let Some(n) = self.option("conns") {
            let n: usize = n.parse().map_err(|_| format!("conns={n}: not a number"))?;
            b = b.max_connections(n).max_idle(n);
        }
        if self.option("keepalive") == Some("0") {
            b = b.keep_alive(false);
        }
        Ok(b.backend(self.backend.clone()))
    }

    fn root(&self) -> Result<&str, String> {
        self.option("root")
            .ok_or_else(|| format!("{}: root=DIR is required", self.prefix))
    }

    /// Adds this mount to the router.
    fn mount(&self, app: Router) -> Result<Router, String> {
        let prefix = self.prefix.as_str();
        match self.kind {
            Kind::App => {
                let mut b = self.tune(FcgiService::builder())?;
                if let Some(script) = self.option("script") {
                    b = b.script_filename(script);
                }
                let svc = b.try_build().map_err(|e| e.to_string())?;
                Ok(attach(app, prefix, svc))
            }
            Kind::Cgi => {
                let mut b = self
                    .tune(FcgiService::builder())?
                    .document_root(self.root()?)
                    .any_file_is_a_script();
                if let Some(index) = self.option("index") {
                    b = b.index_files(index.split(':'));
                }
                let svc = b.try_build().map_err(|e| e.to_string())?;
                Ok(attach(app, prefix, svc))
            }
            Kind::Php => {
                let mut site = PhpSite::builder().root(self.root()?);
                let tuned = self.tune(FcgiService::builder())?;
                site = site.fastcgi(|_| tuned);
                if let Some(index) = self.option("index") {
                    site = site.index_files(index.split(':'));
                    if self.option("front").is_none() {
                        let first = index.split(':').next().unwrap_or("index.php");
                        site = site.front_controller(Some(&format!("/{first}")));
                    }
                }
                if let Some(deny) = self.option("deny") {
                    site = site.deny(deny.split(':'));
                }
                match self.option("front") {
                    Some("none") => site = site.front_controller(None),
                    Some(front) => site = site.front_controller(Some(front)),
                    None => {}
                }
                if let Some(spec) = self.option("sendfile") {
                    let (uri, dir) = spec
                        .split_once(':')
                        .ok_or_else(|| format!("sendfile={spec}: expected URI_PREFIX:DIR"))?;
                    site = site.x_sendfile(uri, dir);
                }
                let svc = site.try_build().map_err(|e| e.to_string())?;
                Ok(attach(app, prefix, svc))
            }
        }
    }
}

/// Mounts `svc` at `prefix` (`""` means everything not otherwise routed).
fn attach<S>(app: Router, prefix: &str, svc: S) -> Router
where
    S: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    if prefix.is_empty() {
        app.fallback_service(svc)
    } else {
        app.nest_service(prefix, svc)
    }
}

fn parse_mount(kind: Kind, spec: &str) -> Result<Mount, String> {
    let (prefix, rest) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: expected PREFIX=BACKEND[,OPTS]"))?;
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?}: the prefix must start with /"));
    }
    let mut parts = rest.split(',');
    let backend = parts
        .next()
        .unwrap_or_default()
        .parse::<Backend>()
        .map_err(|e| e.to_string())?;
    let mut options = Vec::new();
    for opt in parts {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| format!("{opt:?}: expected NAME=VALUE"))?;
        options.push((k.to_owned(), v.to_owned()));
    }
    Ok(Mount {
        kind,
        prefix: prefix.trim_end_matches('/').to_owned(),
        backend,
        options,
    })
}

struct Args {
    listen: String,
    mounts: Vec<Mount>,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut mounts = Vec::new();
    let mut quiet = false;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--app" => mounts.push(parse_mount(Kind::App, &value("--app")?)?),
            "--php" => mounts.push(parse_mount(Kind::Php, &value("--php")?)?),
            "--cgi" => mounts.push(parse_mount(Kind::Cgi, &value("--cgi")?)?),
            "--quiet" => quiet = true,
            "-h" | "--help" => {
                return Err("usage: gateway --listen ADDR [--app|--php|--cgi PREFIX=BACKEND[,OPTS]]... [--quiet]".into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if mounts.is_empty() {
        return Err("no mounts: add --app, --php or --cgi (try --help)".into());
    }
    Ok(Args {
        listen,
        mounts,
        quiet,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("gateway: {msg}");
            return ExitCode::from(2);
        }
    };
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
        tracing::info!(prefix = %if mount.prefix.is_empty() { "/" } else { &mount.prefix }, backend = %mount.backend, kind = ?mount.kind, "mounted");
    }
    if !args.quiet {
        app = app.layer(TraceLayer::new_for_http());
    }

    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("gateway: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("listening on http://{}", args.listen);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway: {err}");
            ExitCode::FAILURE
        }
    }
}
