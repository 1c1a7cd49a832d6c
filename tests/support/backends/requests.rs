//! Talking to a running backend directly with the raw FastCGI client, with the CGI
//! environment a web server would send; for tests of the backends themselves and of
//! things `FcgiService` would hide.

use std::io;

use super::RunningBackend;
use crate::support::raw_client::{self, Params, Response};

impl RunningBackend {
    /// A CGI/1.1 environment for `method` and `target` (path and query, as in
    /// [`RunningBackend::target`]), the way a web server would send it: REQUEST_METHOD,
    /// REQUEST_URI, QUERY_STRING, SCRIPT_NAME, PATH_INFO, SCRIPT_FILENAME and DOCUMENT_ROOT
    /// (for script backends), SERVER_*, REMOTE_*, GATEWAY_INTERFACE and HTTP_HOST.
    /// For script backends, the path is split after the first `.php`/`.cgi` segment.
    /// CONTENT_LENGTH and CONTENT_TYPE are not set here ([`RunningBackend::request`] sets the length).
    pub fn params(&self, method: &str, target: &str) -> Params {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, query),
            None => (target, ""),
        };
        let (script_name, path_info) = if self.kind.uses_script_filename() {
            split_script(path)
        } else {
            ("", path)
        };
        let mut params = Params::new();
        params
            .set("GATEWAY_INTERFACE", "CGI/1.1")
            .set("SERVER_SOFTWARE", "tower-fastcgi-tests")
            .set("SERVER_PROTOCOL", "HTTP/1.1")
            .set("SERVER_NAME", "localhost")
            .set("SERVER_ADDR", "127.0.0.1")
            .set("SERVER_PORT", "80")
            .set("REMOTE_ADDR", "127.0.0.1")
            .set("REMOTE_PORT", "54321")
            .set("REQUEST_METHOD", method)
            .set("REQUEST_URI", target)
            .set("QUERY_STRING", query)
            .set("SCRIPT_NAME", script_name)
            .set("HTTP_HOST", "localhost");
        if !path_info.is_empty() {
            params.set("PATH_INFO", path_info);
        }
        if self.kind.uses_script_filename() {
            let root = self.document_root.to_string_lossy().into_owned();
            params
                .set("DOCUMENT_ROOT", &root)
                .set("SCRIPT_FILENAME", format!("{root}{script_name}"));
        }
        params
    }

    /// Sends one request with the raw client on a new connection: the environment of
    /// [`RunningBackend::params`] plus CONTENT_LENGTH (when there is a body) and `body` on STDIN.
    pub fn request(&self, method: &str, target: &str, body: &[u8]) -> io::Result<Response> {
        let mut params = self.params(method, target);
        if !body.is_empty() {
            params.set("CONTENT_LENGTH", body.len().to_string());
        }
        raw_client::request(&self.addr, &params, body)
    }

    /// GET of a fixture (`"env"`, `"stream?bytes=10"`, ...); panics with the backend's log
    /// if the request fails at the FastCGI level.
    pub fn get(&self, fixture: &str) -> Response {
        let target = self.target(fixture);
        self.request("GET", &target, b"").unwrap_or_else(|e| {
            panic!(
                "{}: GET {target} failed: {e}\n{}",
                self.kind,
                self.log_report()
            )
        })
    }

    /// POST of `body` to a fixture; panics with the backend's log if the request fails.
    pub fn post(&self, fixture: &str, body: &[u8]) -> Response {
        let target = self.target(fixture);
        self.request("POST", &target, body).unwrap_or_else(|e| {
            panic!(
                "{}: POST {target} failed: {e}\n{}",
                self.kind,
                self.log_report()
            )
        })
    }
}

/// Splits a script backend's path after its first `.php`/`.cgi` segment.
fn split_script(path: &str) -> (&str, &str) {
    let mut end = 0;
    for segment in path.split_inclusive('/') {
        end += segment.len();
        let name = segment.trim_end_matches('/');
        if name.ends_with(".php") || name.ends_with(".cgi") {
            let end = end - (segment.len() - name.len());
            return (&path[..end], &path[end..]);
        }
    }
    (path, "")
}
