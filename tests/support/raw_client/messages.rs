//! What the raw client sends ([`Params`]) and what it reads back ([`Response`]).

use std::io;

use tower_fastcgi::proto::{EndRequest, ProtocolStatus, Record};

use crate::support::dump::EnvDump;

/// FastCGI parameters in order; names may repeat ([`Params::append`]), as nginx 1.22 sends
/// repeated request headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(Vec<u8>, Vec<u8>)>);

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Sets `name` to `value`, replacing every earlier pair with that name.
    pub fn set(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Params {
        self.remove(name.as_ref());
        self.append(name, value)
    }

    /// Adds a pair even if the name is already there.
    pub fn append(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Params {
        self.0
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Removes every pair named `name`.
    pub fn remove(&mut self, name: impl AsRef<[u8]>) -> &mut Params {
        let name = name.as_ref();
        self.0.retain(|(n, _)| n != name);
        self
    }

    /// The last value of `name`.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let name = name.as_ref();
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The last value of `name`, if it is UTF-8.
    pub fn get_str(&self, name: impl AsRef<[u8]>) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the application answered to one request.
#[derive(Debug)]
pub struct Response {
    /// All FCGI_STDOUT bytes: the CGI response head and body.
    pub stdout: Vec<u8>,
    /// All FCGI_STDERR bytes.
    pub stderr: Vec<u8>,
    /// The FCGI_END_REQUEST body.
    pub end: EndRequest,
    /// Set when writing STDIN failed (the application ended the request, or closed the
    /// connection, before it read the whole body).
    pub stdin_error: Option<io::Error>,
    /// Management records received meanwhile (UNKNOWN_TYPE, GET_VALUES_RESULT, ...).
    pub other_records: Vec<Record>,
}

impl Response {
    /// The response head as (name, value) pairs, in order. Lines may end in CRLF or LF.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.split().0
    }

    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header named `name` (ASCII case-insensitive), e.g. all Set-Cookie values.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// The CGI status: the number of the Status header, 302 for a Location without
    /// Status, else 200.
    pub fn status(&self) -> u16 {
        if let Some(status) = self.header("Status") {
            let code = status.split_whitespace().next().unwrap_or("");
            return code
                .parse()
                .unwrap_or_else(|_| panic!("invalid Status header {status:?}"));
        }
        if self.header("Location").is_some() {
            302
        } else {
            200
        }
    }

    /// The body: the STDOUT bytes after the head's empty line (all of STDOUT if there is none).
    pub fn body(&self) -> &[u8] {
        self.split().1
    }

    /// STDOUT as text (lossy), for messages and `contains` checks.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// STDERR as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The body of an `env` fixture, parsed; panics (showing STDOUT and STDERR) if it is not one.
    pub fn env(&self) -> EnvDump {
        EnvDump::parse(self.body()).unwrap_or_else(|e| {
            panic!(
                "not an env fixture answer ({e})\n---- stdout ----\n{}\n---- stderr ----\n{}",
                self.text(),
                self.stderr_text()
            )
        })
    }

    fn split(&self) -> (Vec<(String, String)>, &[u8]) {
        let mut headers = Vec::new();
        let mut rest: &[u8] = &self.stdout;
        loop {
            let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
                // No empty line: not a CGI response; everything is body.
                return (Vec::new(), &self.stdout);
            };
            let line = &rest[..eol];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            rest = &rest[eol + 1..];
            if line.is_empty() {
                return (headers, rest);
            }
            let line = String::from_utf8_lossy(line);
            match line.split_once(':') {
                Some((name, value)) => headers.push((name.to_owned(), value.trim().to_owned())),
                None => headers.push((line.into_owned(), String::new())),
            }
        }
    }
}
