//! How a request's [`Outcome`] (or its error) becomes the response sent: the log line,
//! the error hook, the default responses.
//!
//! Logged once per request, whichever way it is served (`Service::call`, `try_call`,
//! `fallible()`): errors with a 5xx status at `error`, refusals (4xx) and not-founds at
//! `info`. The hook only runs on the infallible path (`Service::call`, `PhpSite`):
//! `try_call` and `fallible()` hand the [`Error`] to the caller instead.

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Body;

use super::Inner;
use super::hook::{Cause, Failure};
use super::redirect::Outcome;
use crate::body::FcgiBody;
use crate::error::Error;

/// The response for a request served through the infallible service.
pub(crate) async fn respond(
    inner: &Inner,
    request: &Parts,
    result: Result<Outcome, Error>,
) -> Response<FcgiBody> {
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(err) => {
            log_error(inner, &err);
            let failure = Failure {
                request,
                cause: Cause::Error(&err),
            };
            return ask_hook(inner, &failure).unwrap_or_else(|| default_error_response(&err));
        }
    };
    match outcome {
        Outcome::Backend(res) => {
            let status = res.status();
            if !inner.intercept_errors || !(status.is_client_error() || status.is_server_error()) {
                return res;
            }
            let failure = Failure {
                request,
                cause: Cause::Backend(status, res.headers()),
            };
            match ask_hook(inner, &failure) {
                Some(page) => {
                    discard(res.into_body()).await;
                    page
                }
                None => res,
            }
        }
        Outcome::Served(res) => res,
        Outcome::Redirect(location) => redirect(&location),
        Outcome::NotFound(reason) => {
            log_not_found(reason);
            let page = inner.intercept_not_found.then(|| {
                ask_hook(
                    inner,
                    &Failure {
                        request,
                        cause: Cause::NotFound,
                    },
                )
            });
            page.flatten()
                .unwrap_or_else(|| plain(StatusCode::NOT_FOUND))
        }
    }
}

/// The result for `try_call` and `fallible()`: default responses, errors returned.
pub(crate) fn into_result(
    inner: &Inner,
    result: Result<Outcome, Error>,
) -> Result<Response<FcgiBody>, Error> {
    match result {
        Ok(Outcome::Backend(res) | Outcome::Served(res)) => Ok(res),
        Ok(Outcome::Redirect(location)) => Ok(redirect(&location)),
        Ok(Outcome::NotFound(reason)) => {
            log_not_found(reason);
            Ok(plain(StatusCode::NOT_FOUND))
        }
        Err(err) => {
            log_error(inner, &err);
            Err(err)
        }
    }
}

fn ask_hook(inner: &Inner, failure: &Failure<'_>) -> Option<Response<FcgiBody>> {
    inner.on_error.as_ref().and_then(|hook| hook(failure))
}

fn log_error(inner: &Inner, err: &Error) {
    let status = err.status_code();
    if status.is_server_error() {
        tracing::error!(error = %err, status = status.as_u16(), backends = %inner.fleet, "FastCGI request failed");
    } else {
        tracing::info!(error = %err, status = status.as_u16(), "FastCGI request refused");
    }
}

fn log_not_found(reason: &str) {
    tracing::info!(reason, status = 404, "nothing to serve for this path");
}

/// A short plain-text response: the status and its reason.
pub(crate) fn plain(status: StatusCode) -> Response<FcgiBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut res = Response::new(FcgiBody::full(Bytes::from(text)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// The default error response: the mapped status and its reason as plain text.
pub(crate) fn default_error_response(err: &Error) -> Response<FcgiBody> {
    let status = err.status_code();
    let mut res = plain(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

/// A 308 to `location` (built from the request target, so always a valid header value).
fn redirect(location: &str) -> Response<FcgiBody> {
    let Ok(value) = HeaderValue::from_str(location) else {
        tracing::error!(
            location,
            "a directory redirect target is not a valid header value"
        );
        return plain(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut res = plain(StatusCode::PERMANENT_REDIRECT);
    res.headers_mut().insert(header::LOCATION, value);
    res
}

/// Reads a backend body nobody will see, so its connection can be reused; gives up (and
/// closes the connection) after a second or a megabyte.
pub(crate) async fn discard(mut body: FcgiBody) {
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
