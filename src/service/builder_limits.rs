//! The [`FcgiServiceBuilder`] settings of what a request may cost and carry: the CGI
//! environment, bodies, the connection pool and timeouts. (The backend, the script
//! mapping and errors are in `builder.rs`.)

use std::time::Duration;

use super::FcgiServiceBuilder;
use crate::client::upload::UnknownLengthBody;
#[cfg(doc)]
use crate::defaults;
use crate::service::Multiplex;

impl FcgiServiceBuilder {
    // ---- CGI environment ----

    /// A parameter sent with every request; it replaces a computed variable of the same
    /// name (for example `SERVER_NAME`, or `HTTP_HOST` to pin the host). Use it for
    /// `PHP_VALUE`/`PHP_ADMIN_VALUE` overrides: no request data can ever set those.
    /// Default: none.
    pub fn param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> FcgiServiceBuilder {
        let name = name.into();
        self.cgi.params.retain(|(n, _)| *n != name);
        self.cgi.params.push((name, value.into()));
        self
    }

    /// SERVER_SOFTWARE. Default: `tower-fastcgi/<version>`
    /// ([`SERVER_SOFTWARE`](defaults::SERVER_SOFTWARE)).
    pub fn server_software(mut self, value: impl Into<String>) -> FcgiServiceBuilder {
        self.cgi.server_software = value.into();
        self
    }

    /// A fixed SERVER_NAME. Default: the request's Host, else the local address.
    pub fn server_name(mut self, name: impl Into<String>) -> FcgiServiceBuilder {
        self.cgi.server_name = Some(name.into());
        self
    }

    /// Force `HTTPS=on`/`REQUEST_SCHEME=https` (behind a TLS terminator) or plain HTTP.
    /// Default: detected from [`ConnectionInfo::tls`](crate::ConnectionInfo) or the URI scheme.
    pub fn https(mut self, on: bool) -> FcgiServiceBuilder {
        self.cgi.https = Some(on);
        self
    }

    /// Forward the `Authorization` header as HTTP_AUTHORIZATION (PHP's `PHP_AUTH_*` need
    /// it). Default: on ([`PASS_AUTHORIZATION`](defaults::PASS_AUTHORIZATION)), like nginx
    /// and Caddy; Apache's default is off. `Proxy-Authorization` is never forwarded.
    pub fn pass_authorization(mut self, on: bool) -> FcgiServiceBuilder {
        self.cgi.pass_authorization = on;
        self
    }

    /// Forward header names containing `_`. Default: off
    /// ([`UNDERSCORES_IN_HEADERS`](defaults::UNDERSCORES_IN_HEADERS)), because
    /// `X_Forwarded_For` and `X-Forwarded-For` map to the same variable and one could
    /// impersonate the other.
    pub fn underscores_in_headers(mut self, on: bool) -> FcgiServiceBuilder {
        self.cgi.underscores_in_headers = on;
        self
    }

    /// Send `REDIRECT_STATUS=200` (php-cgi's force-redirect check). Default: on
    /// ([`REDIRECT_STATUS`](defaults::REDIRECT_STATUS)).
    pub fn redirect_status(mut self, on: bool) -> FcgiServiceBuilder {
        self.cgi.redirect_status = on;
        self
    }

    /// Largest total size of the encoded CGI parameters; larger requests get 431.
    /// Default: 64 KiB ([`MAX_PARAMS_SIZE`](defaults::MAX_PARAMS_SIZE)).
    pub fn max_params_size(mut self, bytes: usize) -> FcgiServiceBuilder {
        self.cgi.max_params_len = bytes;
        self
    }

    // ---- bodies ----

    /// Largest request body accepted; larger ones get 413 before the backend is contacted.
    /// Default: 1 GiB ([`MAX_REQUEST_BODY`](defaults::MAX_REQUEST_BODY)).
    pub fn max_request_body(mut self, bytes: u64) -> FcgiServiceBuilder {
        self.body.max_len = bytes;
        self
    }

    /// What to do with a request body of unknown length. Default: spool: 256 KiB in
    /// memory ([`SPOOL_MEMORY`](defaults::SPOOL_MEMORY)), then a temporary file.
    pub fn unknown_length_body(mut self, policy: UnknownLengthBody) -> FcgiServiceBuilder {
        self.body.unknown_length = policy;
        self
    }

    /// Largest CGI response head; larger is 502. Default: 64 KiB
    /// ([`MAX_RESPONSE_HEAD`](defaults::MAX_RESPONSE_HEAD)).
    pub fn max_response_head(mut self, bytes: usize) -> FcgiServiceBuilder {
        self.max_response_head = bytes;
        self
    }

    /// Serve RFC 3875 local redirects internally: a response with `Location: /path` and
    /// no `Status` is answered with the response to a GET of that path (when it lies below
    /// this service's mount; at most 5 hops). Default: on, as the RFC requires (lighttpd
    /// does the same; nginx and Apache's mod_proxy_fcgi send a 302 instead, which is what
    /// `false` gives). PHP never sends such responses: it adds a 302 itself.
    pub fn local_redirects(mut self, on: bool) -> FcgiServiceBuilder {
        self.local_redirects = on;
        self
    }

    /// STDERR bytes logged per request; the rest is counted. Default: 16 KiB
    /// ([`STDERR_LOG_LIMIT`](defaults::STDERR_LOG_LIMIT)).
    pub fn stderr_log_limit(mut self, bytes: usize) -> FcgiServiceBuilder {
        self.stderr_limit = bytes;
        self
    }

    // ---- pool ----

    /// Most connections open to each backend at once; further requests wait in that
    /// backend's queue.
    /// Keep it at or below the backend's worker count (php-fpm `pm.max_children`,
    /// fcgiwrap `-c`): each kept-alive connection occupies a worker even when idle.
    /// Default: 4 ([`MAX_CONNECTIONS`](defaults::MAX_CONNECTIONS)); at least 1.
    pub fn max_connections(mut self, n: usize) -> FcgiServiceBuilder {
        self.max_connections = n.max(1);
        self
    }

    /// Whether requests share backend connections (FastCGI multiplexing: several
    /// request ids at once on one connection), and whether to ask each backend what it
    /// supports (FCGI_GET_VALUES: `FCGI_MAX_CONNS`, `FCGI_MAX_REQS`, `FCGI_MPXS_CONNS`).
    ///
    /// With [`Multiplex::Auto`] the question goes on a connection of its own before a
    /// backend's first request (others wait for the answer), and again after the
    /// backend was unreachable. A backend answering `FCGI_MPXS_CONNS=1` (Go's
    /// `net/http/fcgi`, flup with `multiplexed=True` on Python 2, tokio-fastcgi) gets
    /// up to `FCGI_MAX_REQS` requests (else
    /// [`MULTIPLEX_STREAMS`](defaults::MULTIPLEX_STREAMS)) on each connection, and a
    /// new connection only when all are full, up to `max_connections`.
    /// `FCGI_MAX_CONNS` caps the connections below `max_connections` (php-cgi answers
    /// its `PHP_FCGI_CHILDREN`). No answer within 500 ms (a single-process libfcgi app
    /// never answers a bare GET_VALUES), FCGI_UNKNOWN_TYPE, EOF (php-fpm may close
    /// after answering) or garbage mean "no multiplexing, no limits", and the request
    /// goes on. [`Multiplex::On`] multiplexes without asking. Spawned programs
    /// ([`spawn`](FcgiServiceBuilder::spawn)) are never asked nor multiplexed: the
    /// supervisor already caps each process at what it started.
    ///
    /// On a multiplexed connection a client that goes away has its request aborted
    /// (FCGI_ABORT_REQUEST) while the connection carries on, and a client that reads
    /// more slowly than its backend writes has the excess kept in memory
    /// ([`multiplex_buffer`](FcgiServiceBuilder::multiplex_buffer)), then in a
    /// temporary file ([`multiplex_spill`](FcgiServiceBuilder::multiplex_spill)), and
    /// is aborted beyond both, so the connection's other requests never wait for it.
    /// A Filter's requests (with FCGI_DATA) always get a connection of their own.
    /// Default: off ([`MULTIPLEX_AUTO`](defaults::MULTIPLEX_AUTO) says why).
    pub fn multiplex(mut self, mode: Multiplex) -> FcgiServiceBuilder {
        self.multiplex = match mode {
            Multiplex::On { max_streams } => Multiplex::On {
                max_streams: max_streams.clamp(1, usize::from(u16::MAX)),
            },
            other => other,
        };
        self
    }

    /// Unread response bytes one request may have waiting in memory on a multiplexed
    /// connection; more goes to a temporary file
    /// ([`multiplex_spill`](FcgiServiceBuilder::multiplex_spill)). FastCGI has no
    /// per-request flow control: waiting for one slow client would stall every request
    /// on the connection. Default: 1 MiB
    /// ([`MULTIPLEX_BUFFER`](defaults::MULTIPLEX_BUFFER)); at least 64 KiB (one record).
    pub fn multiplex_buffer(mut self, bytes: usize) -> FcgiServiceBuilder {
        self.multiplex_buffer = bytes.max(64 * 1024);
        self
    }

    /// Unread response bytes one request may have waiting in its temporary file on a
    /// multiplexed connection, beyond
    /// [`multiplex_buffer`](FcgiServiceBuilder::multiplex_buffer) (an unlinked file in
    /// the temporary directory, emptied whenever its client has caught up). A client
    /// further behind has its request aborted (FCGI_ABORT_REQUEST) and gets a cut-off
    /// body, never a complete-looking one. 0: no file, abort at the memory buffer.
    /// Default: 64 MiB ([`MULTIPLEX_SPILL`](defaults::MULTIPLEX_SPILL)).
    pub fn multiplex_spill(mut self, bytes: u64) -> FcgiServiceBuilder {
        self.multiplex_spill = bytes;
        self
    }

    /// Most idle connections kept, capped at `max_connections`. Default: = `max_connections`
    /// (so a pool sized to php-fpm's workers stays warm after a burst).
    pub fn max_idle(mut self, n: usize) -> FcgiServiceBuilder {
        self.max_idle = Some(n);
        self
    }

    /// How long an idle connection is kept (`None`: forever); for a multiplexed
    /// connection, how long it may carry no request. Default: 15 s
    /// ([`IDLE_TIMEOUT`](defaults::IDLE_TIMEOUT)).
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> FcgiServiceBuilder {
        self.idle_timeout = timeout.into();
        self
    }

    /// Close a connection after this many requests (`None`: never). Set it below
    /// php-fpm's `pm.max_requests` to retire connections before php-fpm does.
    /// Default: unlimited ([`MAX_REQUESTS_PER_CONNECTION`](defaults::MAX_REQUESTS_PER_CONNECTION)).
    pub fn max_requests_per_connection(mut self, n: impl Into<Option<u32>>) -> FcgiServiceBuilder {
        self.max_requests_per_connection = n.into();
        self
    }

    /// Keep connections open between requests (FCGI_KEEP_CONN). Default: on
    /// ([`KEEP_ALIVE`](defaults::KEEP_ALIVE)).
    pub fn keep_alive(mut self, on: bool) -> FcgiServiceBuilder {
        self.keep_alive = on;
        self
    }

    /// How long a request may wait for a connection when all are busy (then 503;
    /// `None`: as long as it takes). Default: 30 s ([`QUEUE_TIMEOUT`](defaults::QUEUE_TIMEOUT)).
    pub fn queue_timeout(mut self, timeout: impl Into<Option<Duration>>) -> FcgiServiceBuilder {
        self.queue_timeout = timeout.into();
        self
    }

    // ---- timeouts ----

    /// How long connecting may take (then 504; `None`: the operating system's limit).
    /// Default: 5 s ([`CONNECT_TIMEOUT`](defaults::CONNECT_TIMEOUT)).
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> FcgiServiceBuilder {
        self.connect_timeout = timeout.into();
        self
    }

    /// How long the backend may take to send the complete response head (then 504).
    /// Default: 60 s ([`RESPONSE_HEAD_TIMEOUT`](defaults::RESPONSE_HEAD_TIMEOUT)).
    pub fn response_head_timeout(
        mut self,
        timeout: impl Into<Option<Duration>>,
    ) -> FcgiServiceBuilder {
        self.head_timeout = timeout.into();
        self
    }

    /// Longest silence between records from the backend (504 before the head, a body
    /// error after it). Time spent waiting for a slow client does not count.
    /// Default: 60 s ([`READ_TIMEOUT`](defaults::READ_TIMEOUT)).
    pub fn read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> FcgiServiceBuilder {
        self.read_timeout = timeout.into();
        self
    }

    /// Longest time the backend may refuse request-body bytes (then 504).
    /// Default: 60 s ([`WRITE_TIMEOUT`](defaults::WRITE_TIMEOUT)).
    pub fn write_timeout(mut self, timeout: impl Into<Option<Duration>>) -> FcgiServiceBuilder {
        self.write_timeout = timeout.into();
        self
    }

    /// A cap on the whole exchange, body included. Default: none
    /// ([`TOTAL_TIMEOUT`](defaults::TOTAL_TIMEOUT)).
    pub fn total_timeout(mut self, timeout: impl Into<Option<Duration>>) -> FcgiServiceBuilder {
        self.total_timeout = timeout.into();
        self
    }
}
