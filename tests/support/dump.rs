//! The answer of the `env` fixtures: the environment the application saw and a digest of
//! the request body, in one shape for all backends.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::json::{self, Json};

/// What an `env` fixture reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvDump {
    /// `php` (`$_SERVER`), `flup` (the WSGI environ) or `cgi` (the process environment).
    pub backend: String,
    /// String variables only (PHP's scalars as strings; WSGI's non-str entries left out).
    pub env: BTreeMap<String, String>,
    /// How many body bytes the application read.
    pub input_length: u64,
    /// Their SHA-256, lowercase hex.
    pub input_sha256: String,
}

impl EnvDump {
    /// Parses JSON (`env.php`, flup's `/env`) or the `env.cgi` format: `input_length=N`
    /// and `input_sha256=HEX` lines, an empty line, then NUL-terminated `NAME=value`.
    pub fn parse(body: &[u8]) -> Result<EnvDump, String> {
        if body.first() == Some(&b'{') {
            Self::parse_json(body)
        } else {
            Self::parse_cgi(body)
        }
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// A variable's value; panics listing the variables if it is missing.
    pub fn var(&self, name: &str) -> &str {
        self.get(name).unwrap_or_else(|| {
            panic!(
                "{name} is not in the {} environment: {:?}",
                self.backend, self.env
            )
        })
    }

    /// Whether the application read exactly `body`.
    pub fn read_body(&self, body: &[u8]) -> bool {
        self.input_length == body.len() as u64 && self.input_sha256 == sha256_hex(body)
    }

    fn parse_json(body: &[u8]) -> Result<EnvDump, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
        let value = json::parse(text)?;
        let field = |name: &str| {
            value
                .get(name)
                .ok_or_else(|| format!("no {name:?} in the JSON"))
        };
        let env = field("env")?
            .as_object()
            .ok_or("\"env\" is not an object")?
            .iter()
            .map(|(k, v)| match v {
                Json::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("env {k} is not a string: {other:?}")),
            })
            .collect::<Result<_, String>>()?;
        Ok(EnvDump {
            backend: field("backend")?
                .as_str()
                .ok_or("\"backend\" is not a string")?
                .to_owned(),
            env,
            input_length: field("input_length")?
                .as_u64()
                .ok_or("bad \"input_length\"")?,
            input_sha256: field("input_sha256")?
                .as_str()
                .ok_or("bad \"input_sha256\"")?
                .to_owned(),
        })
    }

    fn parse_cgi(body: &[u8]) -> Result<EnvDump, String> {
        let split = body
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or("no empty line after the digest lines")?;
        let digest = String::from_utf8_lossy(&body[..split]);
        let mut input_length = None;
        let mut input_sha256 = None;
        for line in digest.lines() {
            match line.split_once('=') {
                Some(("input_length", n)) => {
                    input_length = Some(n.parse().map_err(|_| format!("bad input_length {n:?}"))?)
                }
                Some(("input_sha256", hex)) => input_sha256 = Some(hex.to_owned()),
                _ => return Err(format!("unexpected digest line {line:?}")),
            }
        }
        let mut env = BTreeMap::new();
        for entry in body[split + 2..]
            .split(|&b| b == 0)
            .filter(|e| !e.is_empty())
        {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| format!("bad entry {entry:?}"))?;
            env.insert(name.to_owned(), value.to_owned());
        }
        Ok(EnvDump {
            backend: "cgi".to_owned(),
            env,
            input_length: input_length.ok_or("no input_length line")?,
            input_sha256: input_sha256.ok_or("no input_sha256 line")?,
        })
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The first `len` bytes of the `stream` fixtures' pattern: byte i is `b'a' + i % 26`.
pub fn stream_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}
