//! Static files, through tower-http's `ServeFile` (ranges, validators, precompressed
//! variants).

use std::future::poll_fn;
use std::path::PathBuf;

use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tower_service::Service;

use super::SiteInner;
use crate::body::FcgiBody;
use crate::service::respond::plain;

impl SiteInner {
    /// A file the route chose: GET and HEAD only, like nginx's static handler.
    pub(super) async fn serve_static(&self, parts: &Parts, file: PathBuf) -> Response<FcgiBody> {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let mut res = plain(StatusCode::METHOD_NOT_ALLOWED);
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        self.serve_file_as(parts, file).await
    }

    /// Serves `file` as the answer to `parts` (method, URI and headers: ranges and
    /// conditional requests), whatever the method.
    pub(super) async fn serve_file_as(&self, parts: &Parts, file: PathBuf) -> Response<FcgiBody> {
        let mut svc = tower_http::services::ServeFile::new(file);
        if self.precompressed {
            svc = svc.precompressed_br().precompressed_gzip();
        }
        let mut req = Request::new(());
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = parts.uri.clone();
        *req.version_mut() = parts.version;
        *req.headers_mut() = parts.headers.clone();
        let Ok(()) = poll_fn(|cx| Service::<Request<()>>::poll_ready(&mut svc, cx)).await;
        let Ok(res) = svc.call(req).await;
        res.map(FcgiBody::new)
    }
}
