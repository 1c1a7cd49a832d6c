//! The crate's error type and its mapping to HTTP status codes.

use std::fmt;

use http::StatusCode;

use crate::proto::ProtoError;

/// A boxed error, the common currency of `http-body` and tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request through [`FcgiService`](crate::FcgiService) failed.
///
/// Errors that happen before the response head is ready become HTTP responses
/// ([`Error::status_code`]); errors after the head end the response body with this error,
/// so the client sees a broken response rather than a short one that looks complete.
pub struct Error {
    kind: ErrorKind,
    source: Option<BoxError>,
}

/// The category of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Could not connect to the backend (refused, socket missing, ...). 502.
    Connect,
    /// A timeout expired. 504, except [`Timeout::PoolWait`] which is 503.
    Timeout(Timeout),
    /// The connection failed while talking to the backend (reset, EOF). 502.
    Io,
    /// The backend broke the FastCGI protocol (bad record, wrong request id, ...). 502.
    Protocol,
    /// The backend's CGI response head is malformed (bad header, bad Status, no blank
    /// line before the end of output). 502.
    InvalidResponseHead,
    /// The backend's CGI response head exceeds the configured limit. 502.
    ResponseHeadTooLarge,
    /// The body's length disagrees with the backend's `Content-Length`. Body error.
    ContentLengthMismatch,
    /// The backend ended the request with FCGI_OVERLOADED. 503.
    Overloaded,
    /// The backend ended the request with FCGI_CANT_MPX_CONN. 503.
    CantMultiplex,
    /// Every backend of the service is out of the rotation (ejected after repeated
    /// failures, waiting out its backoff). 503, at once.
    NoBackend,
    /// The backend ended the request with FCGI_UNKNOWN_ROLE: a configuration problem. 502.
    UnknownRole,
    /// Reading the client's request body failed. 400.
    RequestBody,
    /// The client's request body exceeds the configured limit. 413.
    RequestBodyTooLarge,
    /// The request body has no known length and the policy requires one. 411.
    LengthRequired,
    /// The request headers or CGI parameters exceed the configured limit. 431.
    RequestHeadersTooLarge,
    /// The request path cannot be mapped safely (NUL, control characters, encoded
    /// slashes, `..` above the root, ...). 400.
    BadRequest,
    /// A file the backend handed to the gateway (`X-Sendfile`, `X-Accel-Redirect`)
    /// does not exist. 404. (A request path matching no script or file is not an
    /// error: it is answered 404 directly.)
    NotFound,
    /// The service is misconfigured (for example a parameter it cannot encode). 500.
    Config,
    /// Spooling the request body to a temporary file failed. 500.
    Spool,
}

/// Which deadline expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timeout {
    /// Connecting to the backend.
    Connect,
    /// Waiting for a pooled connection (all connections busy). 503.
    PoolWait,
    /// Waiting for the end of the response head.
    ResponseHead,
    /// No record arrived from the backend for the read idle timeout.
    Read,
    /// The backend accepted no request-body bytes for the write idle timeout.
    Write,
    /// The whole exchange took longer than the total timeout.
    Total,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error { kind, source: None }
    }

    pub(crate) fn with(kind: ErrorKind, source: impl Into<BoxError>) -> Error {
        Error {
            kind,
            source: Some(source.into()),
        }
    }

    pub(crate) fn msg(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::with(kind, message.into())
    }

    pub(crate) fn timeout(which: Timeout) -> Error {
        Error::new(ErrorKind::Timeout(which))
    }

    pub(crate) fn protocol(err: ProtoError) -> Error {
        Error::with(ErrorKind::Protocol, err)
    }

    pub(crate) fn io(err: std::io::Error) -> Error {
        Error::with(ErrorKind::Io, err)
    }

    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether a timeout expired.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout(_))
    }

    /// Whether connecting to the backend failed.
    pub fn is_connect(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connect | ErrorKind::Timeout(Timeout::Connect)
        )
    }

    /// The status code the default error response uses for this error:
    /// 400, 404, 411, 413 and 431 for client faults; 502 for backend faults; 503 when the
    /// backend is saturated; 504 for timeouts; 500 for configuration errors.
    pub fn status_code(&self) -> StatusCode {
        match self.kind {
            ErrorKind::Connect
            | ErrorKind::Io
            | ErrorKind::Protocol
            | ErrorKind::InvalidResponseHead
            | ErrorKind::ResponseHeadTooLarge
            | ErrorKind::ContentLengthMismatch
            | ErrorKind::UnknownRole => StatusCode::BAD_GATEWAY,
            ErrorKind::Timeout(Timeout::PoolWait)
            | ErrorKind::Overloaded
            | ErrorKind::CantMultiplex
            | ErrorKind::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::RequestBody | ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::RequestBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::LengthRequired => StatusCode::LENGTH_REQUIRED,
            ErrorKind::RequestHeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Config | ErrorKind::Spool => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn describe(&self) -> &'static str {
        match self.kind {
            ErrorKind::Connect => "cannot connect to the FastCGI backend",
            ErrorKind::Timeout(Timeout::Connect) => "timed out connecting to the FastCGI backend",
            ErrorKind::Timeout(Timeout::PoolWait) => {
                "timed out waiting for a free FastCGI connection"
            }
            ErrorKind::Timeout(Timeout::ResponseHead) => {
                "timed out waiting for the FastCGI response head"
            }
            ErrorKind::Timeout(Timeout::Read) => "timed out reading from the FastCGI backend",
            ErrorKind::Timeout(Timeout::Write) => "timed out writing to the FastCGI backend",
            ErrorKind::Timeout(Timeout::Total) => "FastCGI request exceeded its total timeout",
            ErrorKind::Io => "FastCGI connection failed",
            ErrorKind::Protocol => "FastCGI protocol error",
            ErrorKind::InvalidResponseHead => "invalid CGI response head from the backend",
            ErrorKind::ResponseHeadTooLarge => "CGI response head from the backend is too large",
            ErrorKind::ContentLengthMismatch => {
                "backend body length disagrees with its Content-Length"
            }
            ErrorKind::Overloaded => "FastCGI backend is overloaded (FCGI_OVERLOADED)",
            ErrorKind::CantMultiplex => "FastCGI backend refused a multiplexed request",
            ErrorKind::NoBackend => "no FastCGI backend is in the rotation (all failed recently)",
            ErrorKind::UnknownRole => {
                "FastCGI backend does not support the requested role (FCGI_UNKNOWN_ROLE)"
            }
            ErrorKind::RequestBody => "failed to read the request body",
            ErrorKind::RequestBodyTooLarge => "request body too large",
            ErrorKind::LengthRequired => "request body without a length",
            ErrorKind::RequestHeadersTooLarge => "request headers too large",
            ErrorKind::BadRequest => "request path cannot be mapped to a script",
            ErrorKind::NotFound => "file handed to the gateway not found",
            ErrorKind::Config => "FastCGI service misconfigured",
            ErrorKind::Spool => "failed to spool the request body",
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("tower_fastcgi::Error");
        d.field("kind", &self.kind);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        assert_eq!(Error::new(ErrorKind::Connect).status_code(), 502);
        assert_eq!(Error::timeout(Timeout::PoolWait).status_code(), 503);
        assert_eq!(Error::timeout(Timeout::ResponseHead).status_code(), 504);
        assert_eq!(Error::new(ErrorKind::Overloaded).status_code(), 503);
        assert_eq!(Error::new(ErrorKind::UnknownRole).status_code(), 502);
        assert_eq!(
            Error::new(ErrorKind::RequestBodyTooLarge).status_code(),
            413
        );
        assert_eq!(Error::new(ErrorKind::LengthRequired).status_code(), 411);
        assert_eq!(
            Error::new(ErrorKind::RequestHeadersTooLarge).status_code(),
            431
        );
    }

    #[test]
    fn display_includes_the_source() {
        let err = Error::io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset by peer",
        ));
        assert_eq!(err.to_string(), "FastCGI connection failed: reset by peer");
        assert!(std::error::Error::source(&err).is_some());
    }
}
