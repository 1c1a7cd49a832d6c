//! [`PhpSite`]: a whole PHP site in one service: static files, scripts, pretty URLs.
//!
//! What an nginx `server` block with `try_files`, `location ~ \.php$`,
//! `fastcgi_split_path_info` and `include fastcgi_params` does, in one builder call:
//!
//! 1. the path is percent-decoded and normalised; dotfiles and denied paths are refused
//!    (404) before anything touches the filesystem or the backend;
//! 2. an existing script (`*.php`) runs through FastCGI, with split path info only after
//!    an existing script;
//! 3. an existing static file is served by tower-http's `ServeFile` (ranges, ETag,
//!    `If-*`, precompressed `.gz`/`.br` variants); `.php` source is never served;
//! 4. a directory uses its index file (`index.php`), `/dir` redirects to `/dir/` (308);
//! 5. anything else goes to the front controller (`/index.php`), the pretty-URL setup of
//!    WordPress, Laravel, Symfony and Drupal (`try_files $uri $uri/ /index.php?$query_string`).
//!
//! Responses can then be rewritten: `X-Sendfile`/`X-Accel-Redirect` hand a file under an
//! allow-listed directory to the gateway, and backend error statuses can be replaced by
//! the application's own error page. An RFC 3875 local redirect (`Location: /path`
//! without `Status`) is dispatched like a GET for that path, through the same steps.

mod sendfile;

use std::convert::Infallible;
use std::fmt;
use std::future::poll_fn;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use tower_service::Service;

use crate::body::FcgiBody;
use crate::cgi::path::{CleanPath, DocumentRoot, Resolution};
use crate::cgi::{self, LocalRedirect, MAX_LOCAL_REDIRECTS, Mount, Resolved};
use crate::error::{BoxError, Error, ErrorKind};
use crate::service::{FcgiService, FcgiServiceBuilder, ResponseFuture};
use sendfile::SendfileDir;

/// Builds a response for an intercepted backend error (see
/// [`PhpSiteBuilder::intercept_errors`]).
pub type InterceptHandler =
    Arc<dyn Fn(StatusCode, &Request<()>) -> Response<FcgiBody> + Send + Sync>;

/// A PHP site: static files from the document root, `*.php` through FastCGI, a front
/// controller for pretty URLs, private paths refused.
///
/// # nginx, side by side
///
/// ```text
/// server {
///     root /srv/wiki;
///     index index.php;
///     location ~ /\.          { deny all; }
///     location ~ ^/(data|conf)/ { deny all; }
///     location / { try_files $uri $uri/ /index.php?$query_string; }
///     location ~ [^/]\.php(/|$) {
///         fastcgi_split_path_info ^(.+?\.php)(/.*)$;
///         try_files $fastcgi_script_name =404;
///         set $path_info $fastcgi_path_info;
///         fastcgi_param PATH_INFO $path_info;
///         fastcgi_pass unix:/run/php/php8.2-fpm.sock;
///         fastcgi_index index.php;
///         include fastcgi.conf;
///     }
/// }
/// ```
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use tower_fastcgi::PhpSite;
///
/// let site = PhpSite::builder()
///     .unix("/run/php/php8.2-fpm.sock")
///     .root("/srv/wiki")
///     .deny(["/data", "/conf"])
///     .build();
/// let app: Router = Router::new()
///     .route("/api/health", get(|| async { "ok" }))
///     .fallback_service(site);
/// ```
#[derive(Clone)]
pub struct PhpSite {
    inner: Arc<SiteInner>,
}

struct SiteInner {
    fcgi: FcgiService,
    root: DocumentRoot,
    front_controller: Option<String>,
    deny: Vec<String>,
    allow_dotfiles: bool,
    precompressed: bool,
    sendfile: Vec<SendfileDir>,
    intercept: Option<InterceptHandler>,
}

/// What to do with a request.
enum Decision {
    Script(Resolved),
    Static(PathBuf),
    Refuse(Error),
}

impl PhpSite {
    /// A builder; set the backend and the [`root`](PhpSiteBuilder::root).
    pub fn builder() -> PhpSiteBuilder {
        PhpSiteBuilder::new()
    }

    /// The FastCGI service that runs the scripts (for its [`pool_stats`](FcgiService::pool_stats)).
    pub fn fastcgi(&self) -> &FcgiService {
        &self.inner.fcgi
    }
}

impl SiteInner {
    fn decide(&self, parts: &Parts) -> Decision {
        let mount = Mount::of(parts);
        let rest = if mount.rest.is_empty() {
            "/"
        } else {
            mount.rest
        };
        let clean = match CleanPath::parse(rest) {
            Ok(clean) => clean,
            Err(err) => return Decision::Refuse(cgi::bad_path(err)),
        };
        if let Some(reason) = self.denied(&clean) {
            tracing::info!(path = %String::from_utf8_lossy(clean.bytes()), reason, "refusing a private path");
            return Decision::Refuse(Error::msg(ErrorKind::NotFound, reason));
        }
        match self.root.resolve(&clean) {
            Resolution::Script {
                script,
                path_info,
                filename,
            } => Decision::Script(Resolved {
                script,
                path_info,
                filename,
            }),
            Resolution::StaticFile(file) => Decision::Static(file),
            Resolution::DirectoryRedirect => Decision::Refuse(cgi::directory_redirect(mount)),
            Resolution::NotFound => match self.front_controller() {
                Some(front) => Decision::Script(front),
                None => Decision::Refuse(Error::new(ErrorKind::NotFound)),
            },
        }
    }

    /// Dotfiles (except `/.well-known/`) and configured prefixes, after normalisation.
    fn denied(&self, path: &CleanPath<'_>) -> Option<&'static str> {
        if !self.allow_dotfiles
            && path
                .segments()
                .any(|s| s.starts_with(b".") && s != b".well-known")
        {
            return Some("dotfile");
        }
        let bytes = path.bytes();
        let denied = self.deny.iter().any(|prefix| {
            bytes
                .strip_prefix(prefix.as_bytes())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
        });
        denied.then_some("denied path")
    }

    fn front_controller(&self) -> Option<Resolved> {
        let front = self.front_controller.as_deref()?;
        let clean = CleanPath::parse(front).ok()?;
        match self.root.resolve(&clean) {
            Resolution::Script {
                script, filename, ..
            } => Some(Resolved {
                script,
                path_info: Vec::new(),
                filename,
            }),
            _ => None,
        }
    }

    async fn serve<B>(self: Arc<Self>, req: Request<B>) -> Response<FcgiBody>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let mut res = self.dispatch(parts, body).await;
        // RFC 3875 local redirects (`Location: /path`, no Status) come back from the
        // FastCGI service unfollowed, so that the new path passes the same rules as a
        // request for it: deny list, dotfiles, static files, front controller.
        let mut hops = 0;
        while let Some(LocalRedirect(next)) = res.extensions_mut().remove::<LocalRedirect>() {
            hops += 1;
            if hops > MAX_LOCAL_REDIRECTS {
                let err = Error::msg(
                    ErrorKind::InvalidResponseHead,
                    format!("more than {MAX_LOCAL_REDIRECTS} local redirects"),
                );
                return self.fcgi.error_response(&err);
            }
            // A GET without a body (String::new() is an empty body).
            res = self.dispatch(next, String::new()).await;
        }
        res
    }

    /// Serves one request: refused, a static file, or a script (with its response rewritten).
    async fn dispatch<B>(&self, parts: Parts, body: B) -> Response<FcgiBody>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        match self.decide(&parts) {
            Decision::Refuse(err) => self.fcgi.error_response(&err),
            Decision::Static(file) => {
                if parts.method != Method::GET && parts.method != Method::HEAD {
                    let mut res = plain(StatusCode::METHOD_NOT_ALLOWED);
                    res.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    return res;
                }
                self.serve_file(&head_of(&parts), file).await
            }
            Decision::Script(resolved) => {
                let head = (!self.sendfile.is_empty() || self.intercept.is_some())
                    .then(|| head_of(&parts));
                let res = match self
                    .fcgi
                    .call_resolved(Request::from_parts(parts, body), resolved)
                    .await
                {
                    Ok(res) => res,
                    Err(err) => return self.fcgi.error_response(&err),
                };
                if self.sendfile.is_empty() && sendfile::requested(res.headers()).is_some() {
                    // The application left the body to the gateway; passing the header on
                    // would leak an internal path and answer with an empty body that looks
                    // complete.
                    discard(res.into_body()).await;
                    return self.fcgi.error_response(&Error::msg(
                        ErrorKind::Config,
                        "the backend answered with X-Sendfile/X-Accel-Redirect, but \
                         PhpSiteBuilder::x_sendfile is not configured",
                    ));
                }
                match head {
                    Some(head) => self.rewrite(res, &head).await,
                    None => res,
                }
            }
        }
    }

    /// X-Sendfile / X-Accel-Redirect, then intercepted errors.
    async fn rewrite(&self, res: Response<FcgiBody>, head: &Request<()>) -> Response<FcgiBody> {
        if let Some(target) = sendfile::requested(res.headers()) {
            let (parts, body) = res.into_parts();
            discard(body).await;
            return match sendfile::resolve(&self.sendfile, &target) {
                Ok(file) => {
                    let served = self.serve_file(head, file).await;
                    sendfile::merge_headers(served, &parts.headers)
                }
                Err(err) => self.fcgi.error_response(&err),
            };
        }
        let status = res.status();
        match &self.intercept {
            Some(handler) if status.is_client_error() || status.is_server_error() => {
                discard(res.into_body()).await;
                handler(status, head)
            }
            _ => res,
        }
    }

    async fn serve_file(&self, head: &Request<()>, file: PathBuf) -> Response<FcgiBody> {
        let mut svc = tower_http::services::ServeFile::new(file);
        if self.precompressed {
            svc = svc.precompressed_br().precompressed_gzip();
        }
        let mut req = Request::new(());
        *req.method_mut() = head.method().clone();
        *req.uri_mut() = head.uri().clone();
        *req.headers_mut() = head.headers().clone();
        let Ok(()) = poll_fn(|cx| Service::<Request<()>>::poll_ready(&mut svc, cx)).await;
        let Ok(res) = svc.call(req).await;
        res.map(FcgiBody::new)
    }
}

/// Method, URI, version and headers of a request, without body or extensions.
fn head_of(parts: &Parts) -> Request<()> {
    let mut req = Request::new(());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req
}

fn plain(status: StatusCode) -> Response<FcgiBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut res = Response::new(FcgiBody::full(Bytes::from(text)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Reads a backend body nobody will see, so its connection can be reused; gives up (and
/// closes the connection) after a second or a megabyte.
async fn discard(mut body: FcgiBody) {
    let mut budget = 1usize << 20;
    let drain = async {
        while let Some(frame) = poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
            let Ok(frame) = frame else { return };
            let len = frame.data_ref().map_or(0, Bytes::len);
            if len > budget {
                return;
            }
            budget -= len;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

impl<B> Service<Request<B>> for PhpSite
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<FcgiBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        let inner = Arc::clone(&self.inner);
        ResponseFuture::new(async move { Ok(inner.serve(req).await) })
    }
}

impl fmt::Debug for PhpSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhpSite")
            .field("root", &self.inner.root.root)
            .field("fcgi", &self.inner.fcgi)
            .finish_non_exhaustive()
    }
}

/// Builds a [`PhpSite`].
///
/// | setting | default |
/// |---|---|
/// | [`index_files`](PhpSiteBuilder::index_files) | `index.php` |
/// | [`script_extensions`](PhpSiteBuilder::script_extensions) | `php` |
/// | [`front_controller`](PhpSiteBuilder::front_controller) | `/index.php` (when it exists) |
/// | dotfiles | refused, except `/.well-known/` |
/// | [`deny`](PhpSiteBuilder::deny) | nothing else |
/// | [`x_sendfile`](PhpSiteBuilder::x_sendfile) | off |
/// | [`intercept_errors`](PhpSiteBuilder::intercept_errors) | off |
/// | FastCGI settings | [`FcgiServiceBuilder`]'s defaults, tuned with [`fastcgi`](PhpSiteBuilder::fastcgi) |
#[must_use]
pub struct PhpSiteBuilder {
    fcgi: FcgiServiceBuilder,
    root: Option<PathBuf>,
    index: Option<Vec<String>>,
    extensions: Option<Vec<String>>,
    front_controller: Option<String>,
    deny: Vec<String>,
    allow_dotfiles: bool,
    precompressed: bool,
    sendfile: Vec<(String, PathBuf)>,
    intercept: Option<InterceptHandler>,
}

impl PhpSiteBuilder {
    fn new() -> PhpSiteBuilder {
        PhpSiteBuilder {
            fcgi: FcgiService::builder(),
            root: None,
            index: None,
            extensions: None,
            front_controller: Some("/index.php".to_owned()),
            deny: Vec::new(),
            allow_dotfiles: false,
            precompressed: true,
            sendfile: Vec::new(),
            intercept: None,
        }
    }

    /// php-fpm over TCP.
    pub fn tcp(mut self, addr: impl Into<String>) -> PhpSiteBuilder {
        self.fcgi = self.fcgi.tcp(addr);
        self
    }

    /// php-fpm over a Unix socket.
    pub fn unix(mut self, path: impl Into<PathBuf>) -> PhpSiteBuilder {
        self.fcgi = self.fcgi.unix(path);
        self
    }

    /// The document root: static files are served from it, scripts run from it.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> PhpSiteBuilder {
        self.root = Some(dir.into());
        self
    }

    /// Index files for directories, in order. Default: `index.php`.
    pub fn index_files<I, S>(mut self, names: I) -> PhpSiteBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.index = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Extensions (without the dot) of files that run as scripts; compared byte for
    /// byte. Default: `php`. Files with other extensions are served as static files.
    pub fn script_extensions<I, S>(mut self, extensions: I) -> PhpSiteBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extensions = Some(extensions.into_iter().map(Into::into).collect());
        self
    }

    /// The script that handles paths matching no file (`None`: 404 instead).
    /// Default: `/index.php`.
    pub fn front_controller(mut self, script: Option<&str>) -> PhpSiteBuilder {
        self.front_controller = script.map(str::to_owned);
        self
    }

    /// Refuse these path prefixes (and everything below them) with 404, matched after
    /// percent-decoding and normalisation (`/%63onf/` and `/x/../conf/` are `/conf/`).
    /// PHP applications keep `data/`, `conf/` or `vendor/` in the document root and rely on
    /// the web server to refuse them.
    pub fn deny<I, S>(mut self, prefixes: I) -> PhpSiteBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for prefix in prefixes {
            let prefix: String = prefix.into();
            let prefix = format!("/{}", prefix.trim_matches('/'));
            self.deny.push(prefix);
        }
        self
    }

    /// Serve files and run scripts whose path has a segment starting with `.`
    /// (`.git`, `.env`, `.htaccess`). Default: refused, except `/.well-known/`.
    pub fn allow_dotfiles(mut self, allow: bool) -> PhpSiteBuilder {
        self.allow_dotfiles = allow;
        self
    }

    /// Serve `file.br`/`file.gz` next to a static file to clients that accept them.
    /// Default: on.
    pub fn precompressed(mut self, on: bool) -> PhpSiteBuilder {
        self.precompressed = on;
        self
    }

    /// Lets scripts hand a file to the gateway: `X-Accel-Redirect: {uri_prefix}rest`
    /// serves `{dir}/rest`, and `X-Sendfile: /absolute/path` serves the path if it lies
    /// in `dir` (symlinks resolved). Served with ranges and conditional requests; the
    /// script's other headers (Content-Type, Content-Disposition, cookies) are kept.
    /// Repeatable. Off by default; while off, a script response carrying either header is
    /// a 500 with the reason logged, never passed on (it would reveal an internal path
    /// and arrive with an empty body).
    pub fn x_sendfile(
        mut self,
        uri_prefix: impl Into<String>,
        dir: impl Into<PathBuf>,
    ) -> PhpSiteBuilder {
        self.sendfile.push((uri_prefix.into(), dir.into()));
        self
    }

    /// Replace backend responses with status ≥ 400 by `handler`'s response (nginx
    /// `fastcgi_intercept_errors`), so the site's errors look like the rest of the app.
    pub fn intercept_errors<F>(mut self, handler: F) -> PhpSiteBuilder
    where
        F: Fn(StatusCode, &Request<()>) -> Response<FcgiBody> + Send + Sync + 'static,
    {
        self.intercept = Some(Arc::new(handler));
        self
    }

    /// Tunes the FastCGI service (pool size, timeouts, parameters, ...).
    ///
    /// ```
    /// use tower_fastcgi::PhpSite;
    /// let site = PhpSite::builder()
    ///     .unix("/run/php/php8.2-fpm.sock")
    ///     .root("/var/www/html")
    ///     .fastcgi(|b| b.max_connections(8).param("APP_ENV", "prod"))
    ///     .build();
    /// # let _ = site;
    /// ```
    pub fn fastcgi(
        mut self,
        tune: impl FnOnce(FcgiServiceBuilder) -> FcgiServiceBuilder,
    ) -> PhpSiteBuilder {
        self.fcgi = tune(self.fcgi);
        self
    }

    /// Builds the site.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (no backend or no root); see
    /// [`try_build`](PhpSiteBuilder::try_build).
    #[allow(clippy::panic)]
    pub fn build(self) -> PhpSite {
        match self.try_build() {
            Ok(site) => site,
            Err(err) => panic!("{err}"),
        }
    }

    /// Builds the site, or explains what is wrong with the configuration.
    pub fn try_build(self) -> Result<PhpSite, crate::service::BuildError> {
        let root = self.root.ok_or_else(|| {
            crate::service::BuildError::new("PhpSite needs a document root: call .root(dir)")
        })?;
        let mut fcgi = self.fcgi.document_root(&root);
        if let Some(index) = self.index {
            fcgi = fcgi.index_files(index);
        }
        if let Some(ext) = self.extensions {
            fcgi = fcgi.script_extensions(ext);
        }
        let fcgi = fcgi.try_build()?;
        let root = fcgi
            .document_root()
            .cloned()
            .ok_or_else(|| crate::service::BuildError::new("document root missing"))?;
        let sendfile = self
            .sendfile
            .into_iter()
            .map(|(prefix, dir)| SendfileDir::new(prefix, dir))
            .collect();
        Ok(PhpSite {
            inner: Arc::new(SiteInner {
                fcgi,
                root,
                front_controller: self.front_controller,
                deny: self.deny,
                allow_dotfiles: self.allow_dotfiles,
                precompressed: self.precompressed,
                sendfile,
                intercept: self.intercept,
            }),
        })
    }
}

impl fmt::Debug for PhpSiteBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhpSiteBuilder")
            .field("root", &self.root)
            .field("deny", &self.deny)
            .finish_non_exhaustive()
    }
}
