//! What a backend is asked to be: which program on which kind of socket ([`Kind`]), and
//! the address it ends up listening on ([`Addr`]).

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::programs::Program;

/// One backend program on one kind of socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    PhpFpmTcp,
    PhpFpmUnix,
    PhpCgiTcp,
    PhpCgiUnix,
    FlupTcp,
    FlupUnix,
    FcgiwrapTcp,
    FcgiwrapUnix,
}

impl Kind {
    /// Every kind, for tests that run the same check against all backends.
    pub const ALL: [Kind; 8] = [
        Kind::PhpFpmTcp,
        Kind::PhpFpmUnix,
        Kind::PhpCgiTcp,
        Kind::PhpCgiUnix,
        Kind::FlupTcp,
        Kind::FlupUnix,
        Kind::FcgiwrapTcp,
        Kind::FcgiwrapUnix,
    ];

    /// The program this kind runs.
    pub fn program(self) -> Program {
        match self {
            Kind::PhpFpmTcp | Kind::PhpFpmUnix => Program::PhpFpm,
            Kind::PhpCgiTcp | Kind::PhpCgiUnix => Program::PhpCgi,
            Kind::FlupTcp | Kind::FlupUnix => Program::Flup,
            Kind::FcgiwrapTcp | Kind::FcgiwrapUnix => Program::Fcgiwrap,
        }
    }

    /// Whether the backend listens on a Unix socket (otherwise on 127.0.0.1).
    pub fn is_unix(self) -> bool {
        matches!(
            self,
            Kind::PhpFpmUnix | Kind::PhpCgiUnix | Kind::FlupUnix | Kind::FcgiwrapUnix
        )
    }

    /// Whether the backend runs PHP scripts.
    pub fn is_php(self) -> bool {
        matches!(self.program(), Program::PhpFpm | Program::PhpCgi)
    }

    /// Whether SCRIPT_FILENAME names the script to run (php-fpm, php-cgi, fcgiwrap), as
    /// opposed to one application routing on PATH_INFO (flup).
    pub fn uses_script_filename(self) -> bool {
        self.program() != Program::Flup
    }

    /// `php-fpm (tcp)`, `flup (unix)`, ...
    pub fn name(self) -> String {
        let socket = if self.is_unix() { "unix" } else { "tcp" };
        format!("{} ({socket})", self.program().name())
    }

    /// The request target of a fixture for this kind: `target("stream?bytes=10")` is
    /// `/stream.php?bytes=10` for PHP, `/stream.cgi?bytes=10` for fcgiwrap and
    /// `/stream?bytes=10` for flup. Fixtures: env, echo, stream, status, cookies, redirect,
    /// stderr, sleep, head.
    pub fn target(self, fixture: &str) -> String {
        let fixture = fixture.trim_start_matches('/');
        let (name, query) = match fixture.split_once('?') {
            Some((name, query)) => (name, Some(query)),
            None => (fixture, None),
        };
        let extension = match self.program() {
            Program::PhpFpm | Program::PhpCgi => ".php",
            Program::Fcgiwrap => ".cgi",
            Program::Flup => "",
        };
        match query {
            Some(query) => format!("/{name}{extension}?{query}"),
            None => format!("/{name}{extension}"),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Where a backend listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Addr {
    /// The same address as the crate's backend type, for building an `FcgiService`.
    pub fn to_backend(&self) -> tower_fastcgi::Backend {
        match self {
            Addr::Tcp(addr) => tower_fastcgi::Backend::tcp(addr.to_string()),
            Addr::Unix(path) => tower_fastcgi::Backend::unix(path.clone()),
        }
    }

    /// Whether something accepts connections there (the connection is closed at once).
    pub(super) fn accepts(&self) -> bool {
        match self {
            Addr::Tcp(addr) => TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok(),
            Addr::Unix(path) => UnixStream::connect(path).is_ok(),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(addr) => write!(f, "{addr}"),
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}
