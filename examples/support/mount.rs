//! The mounts of the gateway example (`--app`, `--php`, `--cgi`, `--scgi`, `--uwsgi`): parsing
//! `PREFIX=BACKEND[,OPTS]` and adding the service to an axum `Router`. Shared with the
//! tests, so that a test configured "as the gateway's `--php` would be" runs this code.
//!
//! Included with `#[path = ".../examples/support/mount.rs"] mod mount;`.
#![allow(dead_code)]

use std::fmt;
use std::path::PathBuf;

use axum::Router;
use tower_fastcgi::connector::{Scgi, Uwsgi};
use tower_fastcgi::{
    Backend, FcgiFilter, FcgiService, FcgiServiceBuilder, HealthCheck, Multiplex, PhpSite,
    SpawnConfig,
};

#[derive(Debug)]
pub enum Kind {
    App,
    Php,
    Cgi,
    /// `--filter`: the files under `root=DIR` through a FastCGI Filter application.
    Filter,
    /// `--auth`: not a mount but a FastCGI authorizer guarding the paths under PREFIX
    /// (`examples/support/gateway_auth.rs`).
    Auth,
    /// Application mode over SCGI (`--scgi`).
    Scgi,
    /// Application mode over the uwsgi protocol (`--uwsgi`).
    Uwsgi,
}

impl Kind {
    /// The flag that declares this kind of mount.
    fn flag(&self) -> &'static str {
        match self {
            Kind::App => "--app",
            Kind::Php => "--php",
            Kind::Cgi => "--cgi",
            Kind::Filter => "--filter",
            Kind::Auth => "--auth",
            Kind::Scgi => "--scgi",
            Kind::Uwsgi => "--uwsgi",
        }
    }

    /// The `NAME=VALUE` options this kind understands. Anything else is a usage error,
    /// so that a misspelt `conns=` or an option of another kind is never silently ignored.
    fn options(&self) -> &'static [&'static str] {
        match self {
            Kind::Auth => &[
                "backend",
                "conns",
                "keepalive",
                "resolve",
                "script",
                "health",
                "mpx",
            ],
            Kind::Filter => &[
                "backend",
                "conns",
                "keepalive",
                "resolve",
                "root",
                "health",
                "mpx",
            ],
            Kind::App => &[
                "backend",
                "conns",
                "keepalive",
                "resolve",
                "script",
                "procs",
                "env",
                "health",
                "mpx",
            ],
            // One connection per request: no pool, keep-alive or spawned programs;
            // `conns` caps the connections in flight per backend (the rest queue).
            Kind::Scgi | Kind::Uwsgi => &["backend", "conns", "resolve", "script"],
            Kind::Cgi => &[
                "backend",
                "conns",
                "keepalive",
                "resolve",
                "root",
                "index",
                "procs",
                "env",
                "health",
                "mpx",
            ],
            Kind::Php => &[
                "backend",
                "procs",
                "env",
                "conns",
                "health",
                "mpx",
                "keepalive",
                "resolve",
                "root",
                "index",
                "deny",
                "front",
                "sendfile",
            ],
        }
    }
}

/// Where a mount's requests go: a backend to connect to, or a program the gateway
/// starts and supervises itself (`spawn:/usr/bin/php-cgi`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Connect(Backend),
    Spawn(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Connect(backend) => backend.fmt(f),
            Target::Spawn(program) => write!(f, "spawn:{}", program.display()),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        match s.strip_prefix("spawn:") {
            Some("") => Err("spawn: needs a program (spawn:/usr/bin/php-cgi)".into()),
            Some(program) => Ok(Target::Spawn(PathBuf::from(program))),
            None => s
                .parse()
                .map(Target::Connect)
                .map_err(|e: tower_fastcgi::ParseBackendError| e.to_string()),
        }
    }
}

#[derive(Debug)]
pub struct Mount {
    pub kind: Kind,
    /// The URL prefix, without a trailing slash (`""` for `/`).
    pub prefix: String,
    pub backend: Target,
    /// More backends (`backend=` options, repeatable): the mount balances between all.
    pub more_backends: Vec<Backend>,
    pub options: Vec<(String, String)>,
}

impl Mount {
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Backends, pool size and keep-alive options shared by every kind of mount.
    fn tune(&self, mut b: FcgiServiceBuilder) -> Result<FcgiServiceBuilder, String> {
        let conns = match self.option("conns") {
            Some(n) => Some(
                n.parse::<usize>()
                    .map_err(|_| format!("conns={n}: not a number"))?,
            ),
            None => None,
        };
        match &self.backend {
            Target::Connect(backend) => {
                if self.option("procs").is_some() || self.option("env").is_some() {
                    return Err(format!(
                        "{}: procs= and env= need a spawn:PROGRAM backend",
                        self.prefix
                    ));
                }
                b = b.backend(backend.clone());
            }
            Target::Spawn(program) => b = b.spawn(self.spawn_config(program, conns)?),
        }
        for more in &self.more_backends {
            b = b.add_backend(more.clone());
        }
        if let Some(n) = conns {
            b = b.max_connections(n).max_idle(n);
        }
        if self.option("keepalive") == Some("0") {
            b = b.keep_alive(false);
        }
        if let Some(secs) = self.option("resolve") {
            let secs: u64 =
                secs.parse().ok().filter(|&s| s > 0).ok_or_else(|| {
                    format!("resolve={secs}: expected a positive number of seconds")
                })?;
            b = b.resolve_every(std::time::Duration::from_secs(secs));
        }
        match self.option("mpx") {
            None => {}
            Some("auto") => b = b.multiplex(Multiplex::Auto),
            Some("off") => b = b.multiplex(Multiplex::Off),
            Some("on") => b = b.multiplex(Multiplex::On { max_streams: 100 }),
            Some(on) if on.starts_with("on:") => {
                let n = on.trim_start_matches("on:");
                let max_streams = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=65535).contains(n))
                    .ok_or_else(|| format!("mpx={on}: expected on:N with N from 1 to 65535"))?;
                b = b.multiplex(Multiplex::On { max_streams });
            }
            Some(other) => {
                return Err(format!(
                    "mpx={other}: expected `auto` (ask FCGI_GET_VALUES; multiplex if it says \
                     FCGI_MPXS_CONNS=1, honour FCGI_MAX_CONNS), `on` / `on:N` (multiplex, N \
                     requests per connection, default 100) or `off`"
                ));
            }
        }
        match self.option("health") {
            None => {}
            Some("values") => b = b.health_check(HealthCheck::get_values()),
            Some(path) if path.starts_with('/') => b = b.health_check(HealthCheck::ping(path)),
            Some(other) => {
                return Err(format!(
                    "health={other}: expected `values` (FCGI_GET_VALUES) or a ping path such as /fpm-ping"
                ));
            }
        }
        Ok(b)
    }

    /// `spawn:PROGRAM` with `procs=N`, `env=NAME=VALUE` (repeatable) and `conns=N`
    /// (connections per process; default 1, or `PHP_FCGI_CHILDREN`).
    fn spawn_config(&self, program: &PathBuf, conns: Option<usize>) -> Result<SpawnConfig, String> {
        let mut config = SpawnConfig::new(program);
        if let Some(n) = self.option("procs") {
            let n: usize = n
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("procs={n}: expected a positive number"))?;
            config = config.procs(n);
        }
        for (name, value) in self.options.iter().filter(|(n, _)| n == "env") {
            let (var, val) = value
                .split_once('=')
                .ok_or_else(|| format!("{name}={value}: expected env=NAME=VALUE"))?;
            config = config.env(var, val);
        }
        if let Some(n) = conns {
            config = config.connections_per_process(n);
        }
        Ok(config)
    }

    fn root(&self) -> Result<&str, String> {
        self.option("root")
            .ok_or_else(|| format!("{}: root=DIR is required", self.prefix))
    }

    /// The service an `--auth` option talks to (its checks use the Authorizer role).
    pub fn authorizer(&self) -> Result<FcgiService, String> {
        let mut b = self.tune(FcgiService::builder())?;
        if let Some(script) = self.option("script") {
            b = b.script_filename(script);
        }
        b.try_build().map_err(|e| e.to_string())
    }

    /// Adds this mount to the router (an axum `Router`, or the gateway's mount table).
    pub fn mount<A: Attach>(&self, app: A) -> Result<A, String> {
        let prefix = self.prefix.as_str();
        match self.kind {
            Kind::Auth => Err(format!("{prefix}: --auth guards mounts, it is not one")),
            Kind::Filter => {
                let svc = self
                    .tune(FcgiService::builder())?
                    .document_root(self.root()?)
                    .try_build()
                    .map_err(|e| e.to_string())?;
                let filter = FcgiFilter::new(svc).map_err(|e| e.to_string())?;
                Ok(app.attach(prefix, filter))
            }
            Kind::App => {
                let mut b = self.tune(FcgiService::builder())?;
                if let Some(script) = self.option("script") {
                    b = b.script_filename(script);
                }
                let svc = b.try_build().map_err(|e| e.to_string())?;
                Ok(app.attach(prefix, svc))
            }
            Kind::Scgi | Kind::Uwsgi => {
                let mut b = self.tune(FcgiService::builder())?;
                if let Some(script) = self.option("script") {
                    b = b.script_filename(script);
                }
                let err = |e: tower_fastcgi::BuildError| e.to_string();
                Ok(match self.kind {
                    Kind::Scgi => app.attach(prefix, b.try_build_stream::<Scgi>().map_err(err)?),
                    _ => app.attach(prefix, b.try_build_stream::<Uwsgi>().map_err(err)?),
                })
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
                Ok(app.attach(prefix, svc))
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
                Ok(app.attach(prefix, svc))
            }
        }
    }
}

/// Where a mount's service goes: an axum `Router` (the tests), or the gateway's mount
/// table (`examples/support/mounts.rs`), which routes the same way at a fraction of the
/// cost per request.
pub trait Attach: Sized {
    /// Mounts `svc` at `prefix` (`""` means everything not otherwise routed).
    fn attach<S>(self, prefix: &str, svc: S) -> Self
    where
        S: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static;
}

impl Attach for Router {
    fn attach<S>(self, prefix: &str, svc: S) -> Router
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
            self.fallback_service(svc)
        } else {
            self.nest_service(prefix, svc)
        }
    }
}

/// Parses `PREFIX=BACKEND[,NAME=VALUE]...`.
pub fn parse_mount(kind: Kind, spec: &str) -> Result<Mount, String> {
    let (prefix, rest) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: expected PREFIX=BACKEND[,OPTS]"))?;
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?}: the prefix must start with /"));
    }
    let mut parts = rest.split(',');
    let backend = parts.next().unwrap_or_default().parse::<Target>()?;
    let mut options = Vec::new();
    let mut more_backends = Vec::new();
    for opt in parts {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| format!("{opt:?}: expected NAME=VALUE"))?;
        if !kind.options().contains(&k) {
            return Err(format!(
                "{prefix}: unknown option {k:?} for {} (known: {})",
                kind.flag(),
                kind.options().join(", ")
            ));
        }
        if k == "backend" {
            more_backends.push(v.parse::<Backend>().map_err(|e| format!("{prefix}: {e}"))?);
        }
        options.push((k.to_owned(), v.to_owned()));
    }
    Ok(Mount {
        kind,
        prefix: prefix.trim_end_matches('/').to_owned(),
        backend,
        more_backends,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawn_backend_takes_procs_and_env() {
        let m = parse_mount(
            Kind::Php,
            "/=spawn:/usr/bin/php-cgi,procs=4,root=./www,env=PHP_FCGI_MAX_REQUESTS=500",
        )
        .unwrap();
        assert_eq!(m.backend, Target::Spawn("/usr/bin/php-cgi".into()));
        assert_eq!(m.option("procs"), Some("4"));
        assert_eq!(m.option("env"), Some("PHP_FCGI_MAX_REQUESTS=500"));
        assert!(parse_mount(Kind::App, "/=spawn:").is_err());
        let connect = parse_mount(Kind::App, "/=tcp://127.0.0.1:9000,procs=2").unwrap();
        let err = connect.mount(Router::new()).unwrap_err();
        assert!(err.contains("need a spawn:PROGRAM"), "{err}");
        let missing = parse_mount(Kind::App, "/=spawn:/nonexistent/php-cgi").unwrap();
        let err = missing.mount(Router::new()).unwrap_err();
        assert!(err.contains("/nonexistent/php-cgi"), "{err}");
    }

    #[test]
    fn connector_mounts_take_only_what_applies_without_a_pool() {
        assert!(
            parse_mount(
                Kind::Scgi,
                "/s=tcp://127.0.0.1:4000,backend=tcp://127.0.0.1:4001"
            )
            .is_ok()
        );
        assert!(parse_mount(Kind::Uwsgi, "/u=unix:/run/app.sock,conns=64").is_ok());
        let err = parse_mount(Kind::Uwsgi, "/u=unix:/run/app.sock,keepalive=0").unwrap_err();
        assert!(err.contains("--uwsgi"), "{err}");
        let spawned = parse_mount(Kind::Scgi, "/s=spawn:/bin/true").unwrap();
        assert!(spawned.mount(Router::new()).unwrap_err().contains("spawn"));
    }

    #[test]
    fn unknown_options_are_a_usage_error_naming_them() {
        let err = parse_mount(Kind::App, "/app=tcp://127.0.0.1:9000,con=4").unwrap_err();
        assert!(err.contains("unknown option \"con\" for --app"), "{err}");
        // An option of another kind of mount is refused too.
        let err = parse_mount(Kind::App, "/app=tcp://127.0.0.1:9000,root=/srv").unwrap_err();
        assert!(err.contains("\"root\""), "{err}");
        let err = parse_mount(Kind::Cgi, "/cgi=unix:/run/f.sock,root=/srv,deny=/x").unwrap_err();
        assert!(err.contains("\"deny\" for --cgi"), "{err}");
    }

    #[test]
    fn repeated_backend_options_make_a_fleet() {
        let m = parse_mount(
            Kind::Php,
            "/=tcp://127.0.0.1:9000,backend=tcp://127.0.0.1:9001,root=/srv,backend=unix:/run/b.sock,conns=2",
        )
        .unwrap();
        assert_eq!(m.backend, Target::Connect(Backend::tcp("127.0.0.1:9000")));
        assert_eq!(
            m.more_backends,
            [Backend::tcp("127.0.0.1:9001"), Backend::unix("/run/b.sock")]
        );
        let err = parse_mount(Kind::App, "/app=tcp://127.0.0.1:9000,backend=nonsense").unwrap_err();
        assert!(err.contains("invalid FastCGI backend"), "{err}");
    }

    #[test]
    fn known_options_parse() {
        let m = parse_mount(
            Kind::Php,
            "/=unix:/run/php.sock,root=/srv,conns=4,keepalive=0,index=a.php,deny=/d,front=none,sendfile=/p:/srv/p",
        )
        .unwrap();
        assert_eq!(m.option("conns"), Some("4"));
        assert_eq!(m.prefix, "");
        let m = parse_mount(
            Kind::App,
            "/app/=tcp://localhost:9000,script=/srv/app.py,resolve=10,health=/fpm-ping,mpx=auto",
        )
        .unwrap();
        assert_eq!(m.option("resolve"), Some("10"));
        assert_eq!(
            (m.prefix.as_str(), m.option("script")),
            ("/app", Some("/srv/app.py"))
        );
    }

    #[test]
    fn mpx_takes_auto_on_on_n_and_off() {
        let tune = |mpx: &str| {
            let m = parse_mount(Kind::App, &format!("/=tcp://127.0.0.1:9000,mpx={mpx}")).unwrap();
            m.tune(tower_fastcgi::FcgiService::builder()).map(|_| ())
        };
        for ok in ["auto", "on", "on:64", "off"] {
            assert_eq!(tune(ok), Ok(()), "mpx={ok}");
        }
        for bad in ["on:0", "on:70000", "on:x", "yes"] {
            let err = tune(bad).unwrap_err();
            assert!(err.contains(&format!("mpx={bad}")), "{err}");
        }
    }
}
