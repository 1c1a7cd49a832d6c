//! [`PhpSite`]: a whole PHP site in one service: static files, scripts, pretty URLs.
//!
//! What an nginx `server` block with `try_files`, `location ~ \.php$`,
//! `fastcgi_split_path_info` and `include fastcgi_params` does, in one builder call:
//!
//! 1. the path is percent-decoded and normalised (invalid escapes are 400); dotfiles and
//!    denied paths are refused (404) before anything touches the filesystem or the backend;
//! 2. an existing script (`*.php`) runs through FastCGI, with split path info only after
//!    an existing script;
//! 3. an existing static file is served by tower-http's `ServeFile` (ranges, ETag,
//!    `If-*`, precompressed `.gz`/`.br` variants); `.php` source is never served;
//! 4. a directory uses its index file (`index.php`), `/dir` redirects to `/dir/` (308);
//! 5. a path naming a script that does not exist is 404 (nginx's `try_files
//!    $fastcgi_script_name =404`), unless
//!    [`front_controller_for_missing_scripts`](PhpSiteBuilder::front_controller_for_missing_scripts);
//! 6. anything else goes to the front controller (`/index.php`), the pretty-URL setup of
//!    WordPress, Laravel, Symfony and Drupal (`try_files $uri $uri/ /index.php?$query_string`).
//!
//! The code follows those steps: `route.rs` decides (steps 1–6) for the redirect loop
//! in `service/redirect.rs`, `files.rs` serves files, `rewrite.rs` handles a script's
//! `X-Sendfile`/`X-Accel-Redirect` answer (`sendfile.rs` checks its target), and
//! `builder.rs` holds the settings. An RFC 3875 local redirect (`Location: /path`
//! without `Status`) goes through the same steps as a request for that path.

mod builder;
mod files;
mod rewrite;
mod route;
mod sendfile;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::FcgiBody;
use crate::cgi::path::DocumentRoot;
use crate::error::BoxError;
use crate::service::{FcgiService, ResponseFuture};
pub use builder::PhpSiteBuilder;
use sendfile::SendfileDir;

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

/// The site's rules; the [`Router`](crate::service::redirect::Router) of its requests.
struct SiteInner {
    fcgi: FcgiService,
    root: DocumentRoot,
    front_controller: Option<String>,
    front_controller_for_missing_scripts: bool,
    deny: Vec<String>,
    allow_dotfiles: bool,
    precompressed: bool,
    sendfile: Vec<SendfileDir>,
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
        ResponseFuture::new(async move { Ok(inner.fcgi.serve_routed(&*inner, req).await) })
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
