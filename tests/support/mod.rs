//! The one support tree of the integration tests (`mod support;` in each test file): a fake
//! backend, an HTTP harness, and real FastCGI backends for interop tests: php-fpm (TCP and
//! Unix socket), `php-cgi -b`, flup's WSGIServer running `tests/fixtures/wsgi_app.py`, and
//! fcgiwrap running the shell scripts of `tests/fixtures/cgi`.
//!
//! ```ignore
//! mod support;
//! use support::Kind;
//!
//! #[test]
//! fn php_sees_the_method() {
//!     let Some(php) = support::backend_or_skip(Kind::PhpFpmTcp) else { return };
//!     let env = php.get("env").env();
//!     assert_eq!(env.var("REQUEST_METHOD"), "GET");
//! }
//! ```
//!
//! A backend that is not installed skips the test with a loud message on stderr, unless
//! `FCGI_INTEROP=require` (what `scripts/test.sh` sets), which turns it into a failure.
//! `FCGI_INTEROP=skip` skips every interop test. A backend that is installed but does not
//! start is always a failure. `FCGI_TEST_PATH` replaces the directories searched for the
//! backend programs (`FCGI_TEST_PATH=/nonexistent` simulates a machine without them).
//!
//! The tree, one concern per module:
//!
//! - [`fake`]: the in-repo responder as a fake backend (`use support::fake::*;`);
//! - [`http`]: the HTTP harness, a served router and clients for it (and form bodies);
//! - [`backends`]: [`RunningBackend`], a real backend program, one module per program;
//! - [`process`], [`programs`], [`fixtures`]: process groups, finding the programs, the
//!   document roots they serve;
//! - [`raw_client`], [`dump`], [`json`]: a blocking FastCGI client, and parsers for what
//!   the fixtures answer;
//! - multiplexing backends and their observer: [`backends::go_fcgi`] (Go `net/http/fcgi`),
//!   [`tokio_mux`] (the tokio-fastcgi crate, in process), flup with
//!   [`Options::multiplexed`], [`record_tap`] (a proxy that counts the records) and
//!   [`mux_client`] (a raw client for several requests on one connection).
//!
//! Every test binary compiles the whole tree and uses part of it; hence the allows.
#![allow(dead_code, unused_imports)]

pub mod authorizers;
pub mod backends;
pub mod dump;
pub mod fake;
pub mod fixtures;
pub mod http;
pub mod json;
pub mod mux_client;
pub mod process;
pub mod programs;
pub mod raw_client;
pub mod record_tap;
pub mod tokio_mux;

pub use backends::{Addr, Kind, Options, RunningBackend, StartError};
pub use dump::{EnvDump, sha256_hex, stream_pattern};
pub use programs::Program;
pub use raw_client::{Conn, Params, Response};

/// Serialises the tests of one test binary that start heavy real backends (each binary
/// has its own lock): held for the whole test.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A two-thread tokio runtime, for tests that start real backends synchronously first.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The interop policy from `FCGI_INTEROP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Unset: run what is installed, skip the rest loudly.
    SkipMissing,
    /// `require`: a missing backend fails the test.
    Require,
    /// `skip`: skip every interop test.
    SkipAll,
}

pub fn policy() -> Policy {
    match std::env::var("FCGI_INTEROP").as_deref() {
        Ok("require") => Policy::Require,
        Ok("skip") => Policy::SkipAll,
        _ => Policy::SkipMissing,
    }
}

/// Starts `kind` with default [`Options`], or returns `None` (after a loud message) when
/// it is not installed and `FCGI_INTEROP` is not `require`. Use as
/// `let Some(backend) = support::backend_or_skip(kind) else { return };`.
pub fn backend_or_skip(kind: Kind) -> Option<RunningBackend> {
    backend_or_skip_with(kind, Options::default())
}

/// [`backend_or_skip`] with options (workers, `pm.max_requests`, PHP settings, ...).
pub fn backend_or_skip_with(kind: Kind, options: Options) -> Option<RunningBackend> {
    let policy = policy();
    if policy == Policy::SkipAll {
        skip_message(kind, "FCGI_INTEROP=skip");
        return None;
    }
    match RunningBackend::start(kind, options) {
        Ok(backend) => Some(backend),
        Err(StartError::Missing(what)) if policy == Policy::Require => panic!(
            "FCGI_INTEROP=require, but {kind} cannot run: {what}\n\
             Install the backends with scripts/test.sh (apt-get install php-fpm php-cgi \
             fcgiwrap; python3 -m pip install flup)."
        ),
        Err(StartError::Missing(what)) => {
            skip_message(
                kind,
                &format!("{} is not installed ({what})", kind.program().name()),
            );
            None
        }
        Err(StartError::Failed(why)) => panic!("{kind} is installed but did not start:\n{why}"),
    }
}

/// Whether `program` is installed (and not hidden by `FCGI_TEST_PATH`).
pub fn is_installed(program: Program) -> bool {
    programs::locate(program).is_ok()
}

fn skip_message(kind: Kind, why: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("(unnamed test)");
    let line = "#".repeat(78);
    loud(&format!(
        "\n{line}\n## SKIPPED interop test {test} [{kind}]: {why}\n\
         ## run scripts/test.sh to install the backends (FCGI_INTEROP=require makes this fail)\n{line}\n"
    ));
}

/// The banner of a skipped test for something that is not a [`Kind`] (the connector
/// servers of `tests/connectors.rs`).
pub fn skip_loudly(what: &str, why: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("(unnamed test)");
    let line = "#".repeat(78);
    loud(&format!(
        "\n{line}\n## SKIPPED interop test {test} [{what}]: {why}\n\
         ## run scripts/test.sh to install the servers (FCGI_INTEROP=require makes this fail)\n{line}\n"
    ));
}

/// Writes to the process's stderr directly: libtest captures `eprintln!` of passing tests,
/// and a skipped interop test passes, so a banner printed that way would never be seen.
fn loud(text: &str) {
    use std::io::Write as _;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// Whether an application the tests need (not a backend program) is installed at `path`;
/// otherwise skips loudly (`false`) or, with `FCGI_INTEROP=require`, fails. `install`
/// says how to get it. Use as `if !support::app_or_skip(...) { return; }`.
pub fn app_or_skip(name: &str, path: &std::path::Path, install: &str) -> bool {
    let why = match policy() {
        Policy::SkipAll => "FCGI_INTEROP=skip".to_owned(),
        _ if path.exists() => return true,
        Policy::Require => panic!(
            "FCGI_INTEROP=require, but {name} is not installed ({} is missing); {install}",
            path.display()
        ),
        Policy::SkipMissing => format!("{name} is not installed ({} is missing)", path.display()),
    };
    let current = std::thread::current();
    let test = current.name().unwrap_or("(unnamed test)");
    let line = "#".repeat(78);
    loud(&format!(
        "\n{line}\n## SKIPPED interop test {test} [{name}]: {why}\n\
         ## {install} (FCGI_INTEROP=require makes this fail)\n{line}\n"
    ));
    false
}
