//! A script's answer rewritten before it leaves: `X-Sendfile` / `X-Accel-Redirect` hand
//! a file to the gateway. (Intercepted error statuses are the service's error hook.)

use http::Response;
use http::request::Parts;

use super::{SiteInner, sendfile};
use crate::body::FcgiBody;
use crate::error::{Error, ErrorKind};
use crate::service::respond::discard;

impl SiteInner {
    /// Serves the file a script named, with the script's own headers, or passes the
    /// response on untouched.
    pub(super) async fn rewrite(
        &self,
        parts: &Parts,
        res: Response<FcgiBody>,
    ) -> Result<Response<FcgiBody>, Error> {
        let Some(target) = sendfile::requested(res.headers()) else {
            return Ok(res);
        };
        let (head, body) = res.into_parts();
        discard(body).await;
        if self.sendfile.is_empty() {
            // The application left the body to the gateway; passing the header on would
            // leak an internal path and answer with an empty body that looks complete.
            return Err(Error::msg(
                ErrorKind::Config,
                "the backend answered with X-Sendfile/X-Accel-Redirect, but \
                 PhpSiteBuilder::x_sendfile is not configured",
            ));
        }
        let file = sendfile::resolve(&self.sendfile, &target)?;
        let served = self.serve_file_as(parts, file).await;
        Ok(sendfile::merge_headers(served, &head.headers))
    }
}
