//! FastCGI for [tower] and [axum]: mount PHP-FPM, Python WSGI applications (flup), CGI
//! scripts (fcgiwrap) or any FastCGI application beside native Rust handlers.
//!
//! [`FcgiService`] is a `tower::Service<http::Request<B>>`. It turns each request into
//! FastCGI records (BEGIN_REQUEST, PARAMS carrying a CGI/1.1 environment, STDIN), sends
//! them over a pooled keep-alive connection (TCP or Unix socket), and parses the CGI
//! response (Status, Location, headers, STDOUT) into an `http::Response<FcgiBody>` whose
//! body streams as the client reads it.
//!
//! [tower]: https://docs.rs/tower
//! [axum]: https://docs.rs/axum
//!
//! # Mounting PHP-FPM in axum
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use tower::ServiceBuilder;
//! use tower_fastcgi::{ConnectionInfo, FcgiService};
//! use tower_http::{compression::CompressionLayer, trace::TraceLayer};
//!
//! # async fn run() -> std::io::Result<()> {
//! let php = FcgiService::builder()
//!     .unix("/run/php/php8.2-fpm.sock")
//!     .document_root("/var/www/html")   // SCRIPT_FILENAME = root + script path
//!     .max_connections(5)               // ≤ pm.max_children
//!     .read_timeout(Duration::from_secs(30))
//!     .build();
//!
//! let app = Router::new()
//!     .route("/", get(|| async { "native handler" }))
//!     .nest_service("/blog", php)
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(TraceLayer::new_for_http())
//!             .layer(CompressionLayer::new()),
//!     );
//!
//! // TCP_NODELAY: responses leave in several writes as the backend produces them; with
//! // Nagle's algorithm a small last write waits ~40 ms for the client's delayed ACK.
//! // (Linux copies it from the listening socket to accepted ones.)
//! let socket = tokio::net::TcpSocket::new_v4()?;
//! socket.set_nodelay(true)?;
//! socket.bind("127.0.0.1:3000".parse().unwrap())?;
//! let listener = socket.listen(1024)?;
//! // ConnectionInfo gives the backend REMOTE_ADDR, REMOTE_PORT, SERVER_ADDR and SERVER_PORT.
//! axum::serve(listener, app.into_make_service_with_connect_info::<ConnectionInfo>()).await
//! # }
//! ```
//!
//! # Serving a whole PHP site
//!
//! [`PhpSite`] (feature `php`, on by default) replaces the nginx `server` block that PHP
//! users copy (`try_files`, `location ~ \.php$`, `fastcgi_split_path_info`, `deny`):
//! static files through tower-http, `*.php` through FastCGI, a directory index, a front
//! controller for pretty URLs, private paths refused, X-Sendfile/X-Accel-Redirect and
//! intercepted error pages. This is DokuWiki (tested end to end in `tests/dokuwiki.rs`):
//!
//! ```text
//! server {
//!     root /srv/wiki;
//!     index doku.php;
//!     location ~ /(data|conf|bin|inc|vendor)/ { deny all; }
//!     location ~ /\.                          { deny all; }
//!     location / { try_files $uri $uri/ @dokuwiki; }
//!     location @dokuwiki { rewrite ^/(.*) /doku.php?id=$1&$args last; }
//!     location ~ [^/]\.php(/|$) {
//!         fastcgi_split_path_info ^(.+?\.php)(/.*)$;
//!         try_files $fastcgi_script_name =404;
//!         fastcgi_param PATH_INFO $fastcgi_path_info;
//!         fastcgi_pass unix:/run/php/php8.2-fpm.sock;
//!         include fastcgi.conf;
//!     }
//!     location /data/ { internal; alias /srv/wiki/data/; }   # X-Accel-Redirect
//! }
//! ```
//!
//! ```no_run
//! use tower_fastcgi::PhpSite;
//!
//! let wiki = PhpSite::builder()
//!     .unix("/run/php/php8.2-fpm.sock")
//!     .root("/srv/wiki")
//!     .index_files(["doku.php"])
//!     .front_controller(Some("/doku.php"))
//!     .deny(["/data", "/conf", "/bin", "/inc", "/vendor"])
//!     .x_sendfile("/data", "/srv/wiki/data")
//!     .build();
//! let app: axum::Router = axum::Router::new().fallback_service(wiki);
//! ```
//!
//! ## At the root or under a prefix
//!
//! At the root, give the site every path no route claims: `Router::new().route("/api",
//! ..).fallback_service(site)`. Under a prefix, nest it: `.nest_service("/blog", site)`.
//! Nested, the site sees paths below the prefix and keeps the prefix wherever it
//! matters: REQUEST_URI is the original target (`/blog/posts?id=1`), SCRIPT_NAME includes
//! `/blog`, and the directory redirect of `/blog/posts` is `Location: /blog/posts/`.
//! axum hands the nested service `/` for both `/blog` and `/blog/`, so `/blog` serves the
//! index without a redirect; pages with relative links want a route that redirects
//! `/blog` to `/blog/`. `examples/full_stack.rs` mounts one under a prefix beside a
//! WSGI app, inside a full middleware stack.
//!
//! The same as a command line: `cargo run --release --example gateway -- --listen
//! 127.0.0.1:8080 --php /=unix:/run/php/php8.2-fpm.sock,root=/srv/wiki,deny=/data:/conf:/bin:/inc:/vendor,index=doku.php`.
//!
//! # Two ways to name the script
//!
//! - **Application mode** (the default; flup/WSGI, Go, a single front controller): one
//!   application owns the mount point. SCRIPT_NAME is the mount prefix (axum's
//!   `nest_service` prefix, or [`FcgiServiceBuilder::script_name`]) and PATH_INFO the rest of the
//!   path, as with Apache's `ProxyPass /app fcgi://127.0.0.1:9000/`.
//!   [`FcgiServiceBuilder::script_filename`] adds a fixed SCRIPT_FILENAME.
//! - **Document-root mode** ([`FcgiServiceBuilder::document_root`]; php-fpm, fcgiwrap): the path names
//!   a script file under the root. `/index.php/extra` runs `index.php` with
//!   PATH_INFO `/extra`, but only because `index.php` exists and has an allowed extension:
//!   `/uploads/x.jpg/a.php` is a 404, never an execution of `x.jpg`. Directories use
//!   the index file (`index.php`), `/dir` redirects to `/dir/`.
//!
//! REQUEST_URI is always the original request target, also under `nest_service`.
//!
//! # Request and response bodies
//!
//! Request bodies of known length stream to STDIN while the response is read, with
//! backpressure; small ones (≤ 64 KiB) are read first so the request goes out in one
//! write. Bodies of unknown length (chunked, HTTP/2) are spooled by default so
//! CONTENT_LENGTH is exact, which php-fpm requires ([`UnknownLengthBody`]).
//! Responses stream: [`FcgiBody`] reads STDOUT only when polled.
//!
//! What this crate holds per request is bounded (a 64 KiB read-ahead, one record, the
//! spool's memory part). The HTTP server in front holds its own read buffer per client
//! connection: hyper's default is about 400 KiB, which many concurrent large uploads fill.
//! `axum::serve` does not expose it; serving with hyper's `http1::Builder::max_buf_size`
//! does (`examples/gateway.rs` uses 64 KiB).
//!
//! # Backend notes
//!
//! - Keep [`FcgiServiceBuilder::max_connections`] at or below the backend's workers (php-fpm
//!   `pm.max_children`, fcgiwrap `-c`): a kept-alive connection holds a worker. Requests
//!   beyond the cap queue (up to [`FcgiServiceBuilder::queue_timeout`]) instead of failing.
//! - php-fpm closes kept-alive connections when it recycles a worker
//!   (`pm.max_requests`); the service retries such requests once on a new connection.
//! - flup: prefer a Unix socket. Over TCP flup writes each record in several small sends
//!   without `TCP_NODELAY`, and delayed ACKs then cost about 40 ms per request.
//! - PHP sends `Status: 302` for `header('Location: /x')`; only
//!   `header('Location: /x', true, 200)` asks for an RFC 3875 local redirect.
//!
//! # When a pooled backend goes away
//!
//! Idle connections stay open to the backend for
//! [`idle_timeout`](FcgiServiceBuilder::idle_timeout) (15 s). A backend that restarts or
//! recycles a worker closes its side; the next request on such a connection finds it
//! closed before any response byte and is retried once on a new connection (request
//! bodies held in memory or spooled are replayed; a body streamed from the client is not,
//! and that request gets a 502). A backend that stops *listening* but keeps its open
//! connections is different: flup, on SIGTERM, stops accepting and keeps serving the
//! kept-alive connections it has until they go idle, so requests keep succeeding on old
//! connections and new connections are refused (502 at once) until the pool has cycled.
//! Lower `idle_timeout`, or set [`keep_alive(false)`](FcgiServiceBuilder::keep_alive),
//! where a deployment swaps backends behind one address.
//!
//! # Several backends
//!
//! [`add_backend`](FcgiServiceBuilder::add_backend) or
//! [`backends`](FcgiServiceBuilder::backends) turn a service into a fleet (the nginx
//! `upstream` block): each backend has its own pool of `max_connections` (or its own
//! [`backend_max_connections`](FcgiServiceBuilder::backend_max_connections)), requests go to
//! the less loaded of two backends drawn at random (requests in flight until their
//! response body ends), a backend failing three times in a row is ejected for a
//! growing, jittered backoff and readmitted by one trial request, and a request no
//! backend processed (connection refused, FCGI_OVERLOADED, a stale connection) is
//! retried on another within a retry budget. GETs and other idempotent requests are
//! also replayed when a backend took them and died without answering; POSTs are not
//! unless [`retry_non_idempotent`](FcgiServiceBuilder::retry_non_idempotent). With every
//! backend ejected, the one whose backoff ends first gets an early trial and the other
//! requests go to the ejected backends by load
//! ([`route_when_all_ejected`](FcgiServiceBuilder::route_when_all_ejected)); a fleet that
//! is really down answers 503 with `Retry-After` at once.
//! [`FcgiService::backend_stats`] reports each backend (`tests/fleet.rs`).
//!
//! ## Scaling out
//!
//! A gateway built on this crate keeps no state between requests (no sessions, no
//! caches), so many copies of it run side by side behind any L4 load balancer or DNS
//! round robin; each copy balances over the backends itself. The backends can come from
//! a static list, from DNS ([`resolve_every`](FcgiServiceBuilder::resolve_every): every
//! A/AAAA address of a name is a backend, re-resolved periodically, e.g. a Kubernetes
//! headless Service), or from your own stream of [`Change`]s
//! ([`discover`](FcgiServiceBuilder::discover): Kubernetes endpoints, Consul, a config
//! reload; `examples/discovery.rs` drives one from a channel). A removed backend drains:
//! no new requests, in-flight ones finish, its idle connections close.
//!
//! The nginx `upstream` block and what replaces each line:
//!
//! ```text
//! upstream php {                           FcgiService::builder()
//!     server 10.0.0.1:9000;                    .backends(["tcp://10.0.0.1:9000".parse()?,
//!     server 10.0.0.2:9000;                               "tcp://10.0.0.2:9000".parse()?])
//!     server php.svc:9000 resolve;             .resolve_every(Duration::from_secs(10))  // names
//!     max_fails=3 fail_timeout=10s;            .eject_after_failures(3)
//!                                              .ejection_backoff(1 s, 30 s)  // grows, jittered
//!     keepalive 8;                             .max_connections(8)           // per backend
//!     least_conn;                              (always: two random choices, least in flight)
//! }
//! fastcgi_next_upstream error timeout;     (always: refused, connect timeout, overloaded,
//!                                           stale connection; within .retry_budget(20, 10))
//! fastcgi_next_upstream non_idempotent;    .retry_non_idempotent(true)
//! (no active checks in open-source nginx)  .health_check(HealthCheck::ping("/fpm-ping"))
//! ```
//!
//! Differences that matter: nginx counts a server's load by connections; this crate
//! counts requests until their response *body* ends and never opens more connections to
//! a backend than its cap (requests queue instead), so a php-fpm with 6 workers gets more
//! of the load than one with 1. nginx has no retry budget; here a dying fleet is not
//! hammered by retries. nginx retries a request that may have run only with
//! `non_idempotent`; this crate does the same, but replays idempotent methods (GET, HEAD,
//! PUT, DELETE, OPTIONS) by default, as nginx does.
//! Active health checks ([`HealthCheck`]: FCGI_GET_VALUES, or php-fpm's `ping.path`)
//! are optional, as in HAProxy and Caddy: failed probes eject a backend before a request
//! fails on it, and an answered probe readmits it without spending a request as a trial.
//!
//! # Multiplexed connections
//!
//! FastCGI lets one connection carry many requests at once when the application says
//! `FCGI_MPXS_CONNS=1`; nginx and Apache never use it. With
//! [`Multiplex::Auto`] each backend is asked FCGI_GET_VALUES once, and one that answers
//! yes (Go's `net/http/fcgi`, tokio-fastcgi) gets up to `FCGI_MAX_REQS` (else 100)
//! requests on each of its connections, a new connection only when all are full:
//! 256 concurrent requests on 4 connections where nginx opens 256.
//! [`Multiplex::On`] forces it, for flup's `multiplexed=True` (whose Python 3 answer is
//! empty); never for libfcgi applications. FastCGI has no per-request flow control, so a
//! client slower than its backend must not stall the connection: its response waits in
//! memory ([`multiplex_buffer`](FcgiServiceBuilder::multiplex_buffer), 1 MiB), then in a
//! temporary file ([`multiplex_spill`](FcgiServiceBuilder::multiplex_spill), 64 MiB),
//! and beyond both its request is aborted (a cut-off body, never a complete-looking one).
//! A client that goes away has its request aborted (FCGI_ABORT_REQUEST) while the
//! connection carries on. Off by default ([`defaults::MULTIPLEX_AUTO`] says why).
//!
//! ```no_run
//! use tower_fastcgi::{FcgiService, Multiplex};
//!
//! let go_app = FcgiService::builder()
//!     .tcp("127.0.0.1:9000")
//!     .multiplex(Multiplex::Auto)
//!     .build();
//! # drop(go_app);
//! ```
//!
//! # Starting the application itself
//!
//! With feature `spawn` (on by default; Unix), [`FcgiServiceBuilder::spawn`] starts the
//! FastCGI program too, as mod_fcgid and lighttpd's `bin-path` do: a PHP directory is
//! served with nothing but `php-cgi` installed. [`SpawnConfig`] says what to run and how
//! many processes; each gets a Unix socket of its own in a private directory, passed as
//! fd 0, and is a backend of the fleet with one connection (or `PHP_FCGI_CHILDREN`).
//! Processes that exit are restarted (a clean exit such as `PHP_FCGI_MAX_REQUESTS` at
//! once and unseen by clients; failures with a growing backoff; a crash loop stops for
//! a while and the mount answers 503), and they stop with the service's last clone, or
//! with the process through a parent-death signal. See [`spawn`] for the details and
//! `examples/gateway.rs` for `--php /=spawn:/usr/bin/php-cgi,procs=4,root=./www`.
//!
//! # Access control: FastCGI authorizers
//!
//! [`FcgiAuthorizerLayer`] asks a FastCGI application in the Authorizer role (Apache's
//! mod_authnz_fcgi, lighttpd's `"mode" => "authorizer"`) about each request before any
//! service behind it runs, native handlers included: `Status: 200` lets it through with
//! the authorizer's `Variable-NAME` values as [`AuthorizerVariables`] and CGI variables;
//! any other answer is the client's; a down, slow or broken authorizer fails closed. The
//! authorizer is an [`FcgiService`], so its pool, fleet and timeouts apply. See
//! [`authorize`] for the rules and how they differ from lighttpd's and Apache's.
//!
//! ```no_run
//! use axum::Router;
//! use tower_fastcgi::{FcgiAuthorizerLayer, FcgiService};
//!
//! let authorizer = FcgiService::builder().tcp("127.0.0.1:9600").build();
//! let php = FcgiService::builder()
//!     .unix("/run/php/php-fpm.sock")
//!     .document_root("/var/www/admin")
//!     .build();
//! let app: Router = Router::new()
//!     .nest_service("/admin", php)
//!     .layer(FcgiAuthorizerLayer::new(authorizer));
//! ```
//!
//! # Errors
//!
//! Before the response head, failures become responses: 502 (connect refused, protocol
//! error, malformed CGI head), 503 (pool queue timeout, FCGI_OVERLOADED), 504 (timeouts),
//! 400/411/413/431 for requests that cannot be mapped or are too large. After the head,
//! the body ends with an [`Error`]. A 404 (no script or file for the path) and the 308 of
//! a directory without its trailing slash are not errors: they are answers.
//!
//! What is logged where: every request that fails is logged once, with its reason,
//! whichever way it is served (`Service::call`, [`FcgiService::try_call`],
//! [`FcgiService::fallible`]): 5xx at `error`, 4xx and not-founds at `info`, with the
//! backend. A body that fails after the head is logged at `warn` when it ends.
//!
//! One hook customises the answers, [`FcgiServiceBuilder::on_error`] (and
//! [`PhpSiteBuilder::on_error`]): it is shown a [`Failure`] — the request's parts with
//! their extensions (axum's `OriginalUri` included, so a custom page under `nest_service`
//! sees the path the client asked for) and its [`Cause`]: the crate's [`Error`] always,
//! the backend's own error statuses with `intercept_errors(true)` (nginx
//! `fastcgi_intercept_errors`), the crate's 404s with `intercept_not_found(true)`. It
//! returns a response, or `None` for the default one. The hook runs only on the
//! infallible `Service`; `try_call` and `fallible()` hand the [`Error`] to the caller
//! (for `HandleErrorLayer`, `tower::retry`) and return 404s and redirects as responses.
//!
//! # Failure behaviour
//!
//! What a client sees when something goes wrong, and the test that pins it down
//! (`tests/failures.rs`, `tests/security.rs`, `tests/semantics.rs` against a misbehaving
//! responder; `tests/interop.rs` and `tests/interop_load.rs` against real php-fpm,
//! php-cgi, flup and fcgiwrap).
//!
//! | fault | outcome | test |
//! |---|---|---|
//! | connection refused, socket missing | 502 at once | `connection_refused_is_502_at_once` |
//! | backend crash or EOF before the end of the head | 502 | `crash_before_head_is_502`, `eof_after_partial_head_is_502` |
//! | crash or EOF in the middle of the body | body error: the client sees a broken response | `crash_mid_body_is_a_body_error` |
//! | STDOUT ended, then EOF without END_REQUEST | complete response, connection not reused | `eof_after_stdout_end_without_end_request_is_complete` |
//! | garbage, bad version, wrong request id, bad record lengths, web-server-only record types | 502, connection closed | `garbage_is_502_and_connection_closed`, `bad_version_is_502`, `wrong_request_id_is_502`, `record_longer_than_the_stream_is_502`, `invalid_end_request_length_is_502`, `web_server_record_types_from_the_app_are_502` |
//! | END_REQUEST with FCGI_OVERLOADED / FCGI_CANT_MPX_CONN | 503 with `Retry-After` | `overloaded_is_503`, `cant_mpx_conn_is_503` |
//! | END_REQUEST with FCGI_UNKNOWN_ROLE | 502, configuration hint in the log | `unknown_role_is_502_with_a_hint` |
//! | END_REQUEST before any output | 502 | `end_request_without_output_is_502` |
//! | unknown record type from the application | skipped and logged | `unknown_record_types_are_skipped` |
//! | response head over the cap, invalid header, CR inside a value, folded line, invalid Status | 502 | `response_head_larger_than_the_cap_is_502`, `invalid_header_name_is_502`, `cr_inside_a_header_value_is_502`, `obs_fold_continuation_is_502`, `invalid_status_is_502` |
//! | backend Content-Length disagrees with the body | body error | `backend_content_length_mismatch_is_a_body_error` |
//! | backend Transfer-Encoding | dropped (with any Content-Length) | `backend_transfer_encoding_never_reaches_the_client` |
//! | backend keeps sending after END_REQUEST | connection closed, not pooled | `data_after_end_request_closes_the_connection` |
//! | STDERR flood | logged up to a cap, the rest counted; response unaffected | `stderr_flood_is_bounded_and_harmless` |
//! | no response head in time / connect too slow | 504 | `response_head_timeout_is_504`, `connect_timeout_is_504` |
//! | backend silent mid-body / total time exceeded | body error | `read_timeout_after_the_head_is_a_body_error`, `total_timeout_caps_a_streaming_body` |
//! | backend stops reading the request body | 504 | `write_timeout_when_the_backend_stops_reading` |
//! | all connections busy past the queue timeout | 503 | `queue_timeout_is_503` |
//! | a slow client | never counted against the backend's read timeout | `read_timeout_does_not_count_a_slow_client` |
//! | client goes away (body or future dropped) | backend connection closed at once, pool freed | `dropping_the_body_closes_the_backend_connection`, `dropping_the_future_before_the_head_closes_the_backend_connection` |
//! | reused connection found closed before any response byte | retried once on a genuinely new connection, never another pooled one (bodies in memory or spooled replay; a streamed body does not) | `stale_connection_retry_succeeds_on_a_fresh_connection`, `stale_pooled_connection_is_retried_once`, `streamed_body_is_not_replayed`, `stale_retry_at_capacity_gets_a_fresh_connection` |
//! | php-fpm recycling workers (`pm.max_requests = 10`) under sequential and concurrent load | invisible to clients: 10 000 requests, zero failures | `php_fpm_worker_recycling_is_invisible_to_clients_tcp`, `..._unix` (`tests/interop_load.rs`) |
//! | more clients than backend workers (256 clients, pool of 8) | requests queue, none fails; memory stays bounded | `php_fpm_under_256_concurrent_clients`, `concurrent_requests_queue_on_four_connections` |
//! | request body over the limit / unknown length when refused | 413 / 411, backend never contacted | `unknown_length_policies` |
//! | request headers over the parameter cap | 431 | `oversized_request_headers_are_431` |
//! | invalid percent-encoding (`/x.php/%ZZ`), in every mode | 400, backend never contacted | `invalid_percent_encoding_is_400_before_the_backend_in_every_mode`, `invalid_percent_encoding_in_a_site_is_400_before_anything_else` |
//! | request body cut off by a length limit (tower-http `RequestBodyLimitLayer`, chunked or not) | 413 | `chunked_body_over_the_limit_is_413`, `content_length_over_the_limit_is_413` |
//! | path with NUL, CR/LF, backslash, encoded slash, `..` above the root | 400 or 404, never reaches the backend | `nul_and_line_breaks_in_the_path_are_400`, `traversal_never_escapes_the_document_root`, `cve_2019_11043_newline_in_path_info_is_refused` |
//! | upload run as script (`/uploads/x.jpg/a.php`), symlink out of the root | 404 | `split_path_never_runs_an_upload`, `symlinks_out_of_the_root_are_refused` |
//!
//! # SCGI and uwsgi
//!
//! The same builder makes an [`ScgiService`] ([`build_scgi`](FcgiServiceBuilder::build_scgi):
//! flup's SCGI server, uWSGI's `--scgi-socket`) or a [`UwsgiService`]
//! ([`build_uwsgi`](FcgiServiceBuilder::build_uwsgi): uWSGI's `--uwsgi-socket`, what nginx
//! `uwsgi_pass` speaks), with the same environment, routing, timeouts, limits, error
//! responses and hook; only the framing differs, and a response ends when the server
//! closes, so each request has a connection of its own. See [`connector`] (which also
//! says what AJP would take).
//!
//! # Security defaults
//!
//! The `Proxy` header never becomes HTTP_PROXY (httpoxy); header names containing `_`
//! are dropped so `X_Forwarded_For` cannot pose as `X-Forwarded-For`; hop-by-hop headers
//! and those named in `Connection` are not forwarded; request data can never set a
//! parameter name such as PHP_VALUE or SCRIPT_FILENAME; decoded paths with NUL, control
//! characters, backslashes, encoded slashes or `..` above the root are refused; scripts
//! that are symlinks out of the root are refused; the backend's `Transfer-Encoding` is
//! dropped and its `Content-Length` is enforced against the body.
//!
//! # Features
//!
//! - `axum` (default): reads axum's `OriginalUri` (the mount prefix) and `ConnectInfo`
//!   extensions; `Connected` for [`ConnectionInfo`] on `TcpListener`, `UnixListener` and
//!   [`ConnectionInfoListener`] (any other listener, `tap_io`'s included).
//! - `php` (default): [`PhpSite`].
//! - `metrics`: `metrics::Reporter` publishes [`FcgiService::stats`] and
//!   [`FcgiService::backend_stats`] through the `metrics` crate facade (Prometheus,
//!   StatsD, ...) as `fastcgi_*` counters and gauges, from the snapshot and off the
//!   request path; `examples/prometheus.rs` serves them on `/metrics`.
//! - `spawn` (default, Unix): [`SpawnConfig`] and [`FcgiServiceBuilder::spawn`], which
//!   start and supervise the FastCGI program (adds the `libc` dependency).
//! - `unstable`: the byte-level record helpers in [`proto`] (see its "Unstable helpers")
//!   and hidden benchmark hooks. No semver promise: they may change in any release.
#![deny(unsafe_code)]
// No input may panic the library: no unwrap/expect/panic, no unchecked indexing outside tests.
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod authorize;
pub mod defaults;
pub mod proto;

#[cfg(feature = "unstable")]
#[doc(hidden)]
pub mod bench_hooks;
mod body;
mod cgi;
mod client;
pub mod connector;
pub mod discover;
mod error;
pub mod filter;
mod fleet;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod pool;
mod service;
#[cfg(feature = "php")]
mod site;
#[cfg(all(feature = "spawn", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "spawn", unix))))]
pub mod spawn;

pub use authorize::{
    AuthorizerBody, AuthorizerFuture, AuthorizerVariables, FcgiAuthorizer, FcgiAuthorizerLayer,
};
pub use body::FcgiBody;
pub use cgi::{ConnectionInfo, RequestParams};
#[cfg(feature = "axum")]
pub use cgi::{ConnectionInfoListener, ListenerAddr, ListenerIo};
pub use client::upload::UnknownLengthBody;
pub use client::{Backend, ParseBackendError};
pub use connector::{ScgiService, StreamService, UwsgiService};
pub use discover::Change;
pub use error::{BoxError, Error, ErrorKind, Timeout};
pub use filter::FcgiFilter;
pub use service::{
    BackendStats, BuildError, Cause, ErrorHandler, Failure, Failures, Fallible, FallibleFuture,
    FcgiService, FcgiServiceBuilder, HealthCheck, Latency, Multiplex, PoolStats, Probes,
    ResponseFuture, Stats,
};
#[cfg(feature = "php")]
pub use site::{PhpSite, PhpSiteBuilder};
#[cfg(all(feature = "spawn", unix))]
pub use spawn::SpawnConfig;
