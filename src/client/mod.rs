//! One backend connection on tokio: connecting, reading records, and driving one
//! request (an [`Exchange`](exchange::Exchange)) through it, full duplex.
//!
//! A connection is exclusive to one request at a time (request id 1), which is what
//! php-fpm, php-cgi, fcgiwrap and flup (by default) support. Everything that touches
//! the socket during a request goes through [`Connection::poll_record`](conn::Connection::poll_record)
//! and the exchange's write queue, so a multiplexed transport (several request ids on one
//! connection, for backends that advertise `FCGI_MPXS_CONNS=1`) can later be added behind
//! the same two calls: a per-connection driver task that routes records by id.

pub(crate) mod call;
pub(crate) mod conn;
pub(crate) mod exchange;
pub(crate) mod mux;
pub(crate) mod stderr;
pub(crate) mod stream;
pub(crate) mod upload;
pub(crate) mod values;
mod write_queue;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a FastCGI application listens.
///
/// ```
/// use tower_fastcgi::Backend;
///
/// let tcp: Backend = "tcp://127.0.0.1:9000".parse().unwrap();
/// assert_eq!(tcp, Backend::tcp("127.0.0.1:9000"));
/// let unix: Backend = "unix:/run/php/php-fpm.sock".parse().unwrap();
/// assert_eq!(unix, Backend::unix("/run/php/php-fpm.sock"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A TCP address, `host:port` (resolved at connect time unless it is an IP address).
    Tcp(String),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl Backend {
    /// A TCP backend at `host:port`.
    pub fn tcp(addr: impl Into<String>) -> Backend {
        Backend::Tcp(addr.into())
    }

    /// A Unix socket backend.
    pub fn unix(path: impl Into<PathBuf>) -> Backend {
        Backend::Unix(path.into())
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Tcp(addr) => write!(f, "tcp://{addr}"),
            Backend::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The error of parsing a [`Backend`] from a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseBackendError(String);

impl fmt::Display for ParseBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid FastCGI backend {:?}: expected tcp://HOST:PORT or unix:PATH",
            self.0
        )
    }
}

impl std::error::Error for ParseBackendError {}

impl FromStr for Backend {
    type Err = ParseBackendError;

    /// Parses `tcp://HOST:PORT`, `unix:PATH` (also `unix://PATH`), or a bare `HOST:PORT`.
    fn from_str(s: &str) -> Result<Backend, ParseBackendError> {
        let err = || ParseBackendError(s.to_owned());
        if let Some(path) = s.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(err());
            }
            return Ok(Backend::unix(path));
        }
        let addr = s.strip_prefix("tcp://").unwrap_or(s);
        let (host, port) = addr.rsplit_once(':').ok_or_else(err)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(err());
        }
        Ok(Backend::tcp(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_backends() {
        assert_eq!("127.0.0.1:9000".parse(), Ok(Backend::tcp("127.0.0.1:9000")));
        assert_eq!("tcp://[::1]:9000".parse(), Ok(Backend::tcp("[::1]:9000")));
        assert_eq!(
            "unix:///run/x.sock".parse(),
            Ok(Backend::unix("/run/x.sock"))
        );
        assert!("tcp://nohost".parse::<Backend>().is_err());
        assert!("tcp://:80".parse::<Backend>().is_err());
        assert!("unix:".parse::<Backend>().is_err());
        assert!("localhost:http".parse::<Backend>().is_err());
        assert_eq!(Backend::tcp("a:1").to_string(), "tcp://a:1");
    }
}
