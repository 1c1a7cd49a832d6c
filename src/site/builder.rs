//! [`PhpSiteBuilder`]: the site's settings, with their defaults.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use http::Response;

use super::sendfile::SendfileDir;
use super::{PhpSite, SiteInner};
use crate::body::FcgiBody;
use crate::defaults;
use crate::service::{BuildError, Failure, FcgiService, FcgiServiceBuilder};

/// Builds a [`PhpSite`].
///
/// | setting | default |
/// |---|---|
/// | [`index_files`](PhpSiteBuilder::index_files) | `index.php` |
/// | [`script_extensions`](PhpSiteBuilder::script_extensions) | `php` |
/// | [`front_controller`](PhpSiteBuilder::front_controller) | `/index.php` (when it exists) |
/// | [`allow_dotfiles`](PhpSiteBuilder::allow_dotfiles) | off (refused, except `/.well-known/`) |
/// | [`precompressed`](PhpSiteBuilder::precompressed) | on (`.br`/`.gz` siblings) |
/// | [`deny`](PhpSiteBuilder::deny) | nothing else |
/// | [`x_sendfile`](PhpSiteBuilder::x_sendfile) | off |
/// | [`front_controller_for_missing_scripts`](PhpSiteBuilder::front_controller_for_missing_scripts) | off (a missing `*.php` is 404) |
/// | [`on_error`](PhpSiteBuilder::on_error) | none: default error responses |
/// | [`intercept_errors`](PhpSiteBuilder::intercept_errors) | off (PHP's error pages pass through) |
/// | [`intercept_not_found`](PhpSiteBuilder::intercept_not_found) | off (plain 404) |
/// | FastCGI settings | [`FcgiServiceBuilder`]'s defaults, tuned with [`fastcgi`](PhpSiteBuilder::fastcgi) |
#[must_use]
pub struct PhpSiteBuilder {
    fcgi: FcgiServiceBuilder,
    root: Option<PathBuf>,
    index: Option<Vec<String>>,
    extensions: Option<Vec<String>>,
    front_controller: Option<String>,
    front_controller_for_missing_scripts: bool,
    deny: Vec<String>,
    allow_dotfiles: bool,
    precompressed: bool,
    sendfile: Vec<(String, PathBuf)>,
}

impl PhpSiteBuilder {
    pub(super) fn new() -> PhpSiteBuilder {
        PhpSiteBuilder {
            fcgi: FcgiService::builder(),
            root: None,
            index: None,
            extensions: None,
            front_controller: defaults::FRONT_CONTROLLER.map(str::to_owned),
            front_controller_for_missing_scripts: defaults::FRONT_CONTROLLER_FOR_MISSING_SCRIPTS,
            deny: Vec::new(),
            allow_dotfiles: defaults::ALLOW_DOTFILES,
            precompressed: defaults::PRECOMPRESSED,
            sendfile: Vec::new(),
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

    /// Send a request for a script that does not exist (`/missing.php`,
    /// `/old/wp-login.php/x`) to the front controller, as Caddy's `php_fastcgi` does.
    /// Default: `false`, a 404 without running PHP, as nginx's `try_files
    /// $fastcgi_script_name =404` (bots probing for `.php` files then cost nothing).
    /// Either way a script name after a file that is not a script (`/static.txt/x.php`,
    /// `/uploads/x.jpg/a.php`) is a 404.
    pub fn front_controller_for_missing_scripts(mut self, on: bool) -> PhpSiteBuilder {
        self.front_controller_for_missing_scripts = on;
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

    /// The error hook for the site's failures, as [`FcgiServiceBuilder::on_error`]: return a page,
    /// or `None` for the default response. It sees the request's parts (under axum's
    /// `nest_service`, [`Failure::original_uri`](crate::Failure::original_uri)
    /// is the full path) and what went wrong. Directory redirects never reach it.
    pub fn on_error<F>(mut self, handler: F) -> PhpSiteBuilder
    where
        F: Fn(&Failure<'_>) -> Option<Response<FcgiBody>> + Send + Sync + 'static,
    {
        self.fcgi = self.fcgi.on_error(handler);
        self
    }

    /// Show PHP's responses with status ≥ 400 to the [`on_error`](PhpSiteBuilder::on_error)
    /// hook, so the site's errors look like the rest of the app (nginx
    /// `fastcgi_intercept_errors`). Default: off.
    pub fn intercept_errors(mut self, on: bool) -> PhpSiteBuilder {
        self.fcgi = self.fcgi.intercept_errors(on);
        self
    }

    /// Show the site's own 404s (no file or script, private paths) to the
    /// [`on_error`](PhpSiteBuilder::on_error) hook. Default: off (a plain-text 404).
    pub fn intercept_not_found(mut self, on: bool) -> PhpSiteBuilder {
        self.fcgi = self.fcgi.intercept_not_found(on);
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
    pub fn try_build(self) -> Result<PhpSite, BuildError> {
        let root = self
            .root
            .ok_or_else(|| BuildError::new("PhpSite needs a document root: call .root(dir)"))?;
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
            .ok_or_else(|| BuildError::new("document root missing"))?;
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
                front_controller_for_missing_scripts: self.front_controller_for_missing_scripts,
                deny: self.deny,
                allow_dotfiles: self.allow_dotfiles,
                precompressed: self.precompressed,
                sendfile,
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

#[cfg(test)]
mod tests {
    use crate::defaults;

    /// The table above says what `defaults` holds.
    #[test]
    fn the_site_defaults_table_matches_the_defaults_module() {
        let source = include_str!("builder.rs");
        let row = |name: &str| {
            let start = format!("/// | [`{name}`](PhpSiteBuilder::{name}) | ");
            let line = source
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(start.as_str()))
                .unwrap_or_else(|| panic!("no table row for {name}"));
            line.to_owned()
        };
        let switch = |on: bool| if on { "on" } else { "off" };
        let list = |items: &[&str]| {
            items
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let front = defaults::FRONT_CONTROLLER.map_or("none".to_owned(), |f| format!("`{f}`"));
        let expected = [
            ("index_files", list(defaults::INDEX_FILES)),
            ("script_extensions", list(defaults::SCRIPT_EXTENSIONS)),
            ("front_controller", front),
            (
                "front_controller_for_missing_scripts",
                switch(defaults::FRONT_CONTROLLER_FOR_MISSING_SCRIPTS).to_owned(),
            ),
            (
                "allow_dotfiles",
                switch(defaults::ALLOW_DOTFILES).to_owned(),
            ),
            ("precompressed", switch(defaults::PRECOMPRESSED).to_owned()),
            (
                "intercept_errors",
                switch(defaults::INTERCEPT_ERRORS).to_owned(),
            ),
            (
                "intercept_not_found",
                switch(defaults::INTERCEPT_NOT_FOUND).to_owned(),
            ),
        ];
        for (name, want) in expected {
            let cell = row(name);
            assert!(
                cell.starts_with(&want),
                "{name}: table says {cell:?}, code says {want:?}"
            );
        }
    }
}
