//! The error hook: [`Builder::on_error`](super::FcgiServiceBuilder::on_error) and what it is shown.

use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, Response, StatusCode, Uri};

use crate::body::FcgiBody;
use crate::error::Error;

/// The error hook set with [`Builder::on_error`](super::FcgiServiceBuilder::on_error): a custom
/// response for a failure, or `None` for the default one.
pub type ErrorHandler = Arc<dyn Fn(&Failure<'_>) -> Option<Response<FcgiBody>> + Send + Sync>;

/// A request that is about to get an error response, as the error hook sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Failure<'a> {
    /// The request as the service received it: method, URI (under axum's
    /// `nest_service`, without the prefix), headers and extensions (axum's `OriginalUri`,
    /// `ConnectInfo`, [`RequestParams`](crate::RequestParams), your own).
    pub request: &'a Parts,
    /// What went wrong.
    pub cause: Cause<'a>,
}

/// What went wrong; see [`Failure`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Cause<'a> {
    /// The crate could not get a response from the backend (502, 503, 504) or refused
    /// the request (400, 411, 413, 431, 500); [`Error::status_code`] is the status.
    Error(&'a Error),
    /// The backend answered with an error status (≥ 400) and these headers. Only with
    /// [`Builder::intercept_errors`](super::FcgiServiceBuilder::intercept_errors) (nginx
    /// `fastcgi_intercept_errors`); the backend's body is discarded when the hook
    /// replaces the response.
    Backend(StatusCode, &'a HeaderMap),
    /// Nothing to serve for the path (404): no script, no file, or a private path. Only
    /// with [`Builder::intercept_not_found`](super::FcgiServiceBuilder::intercept_not_found).
    NotFound,
}

impl Failure<'_> {
    /// The status of the default response: the error's, the backend's, or 404.
    pub fn status(&self) -> StatusCode {
        match self.cause {
            Cause::Error(err) => err.status_code(),
            Cause::Backend(status, _) => status,
            Cause::NotFound => StatusCode::NOT_FOUND,
        }
    }

    /// The crate's error, if that is the cause.
    pub fn error(&self) -> Option<&Error> {
        match self.cause {
            Cause::Error(err) => Some(err),
            _ => None,
        }
    }

    /// The URI the client asked for: axum's `OriginalUri` when present (the full path
    /// under `nest_service`), else the request's own URI.
    pub fn original_uri(&self) -> &Uri {
        #[cfg(feature = "axum")]
        if let Some(axum::extract::OriginalUri(uri)) =
            self.request.extensions.get::<axum::extract::OriginalUri>()
        {
            return uri;
        }
        &self.request.uri
    }
}
