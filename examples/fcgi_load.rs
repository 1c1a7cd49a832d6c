//! A FastCGI load generator: drives a FastCGI application directly, with no HTTP and no
//! gateway, to measure the ceiling a gateway in front of the same backend could reach.
//!
//! ```text
//! cargo run --release --example fcgi_load -- --tcp 127.0.0.1:9500 -c 16 -d 5
//! cargo run --release --example fcgi_load -- --unix /run/php/php-fpm.sock -c 4 -d 5 \
//!     --script /srv/www/hello.php
//! cargo run --release --example fcgi_load -- --tcp 127.0.0.1:9500 -c 16 -d 5 \
//!     --method POST --body 1048576
//! ```
//!
//! C keep-alive connections each send one Responder request at a time (BEGIN_REQUEST with
//! FCGI_KEEP_CONN, a few PARAMS, STDIN) and read up to END_REQUEST. Requests completing
//! during the warm-up are not counted; requests still in flight at the end are abandoned
//! (neither counted nor errors). Prints one JSON object:
//!
//! - `requests`, `rps`, latency percentiles in milliseconds (`p50_ms`, `p90_ms`, `p99_ms`,
//!   `max_ms`), `bytes_per_response` (STDOUT bytes, head included);
//! - `errors`: connection failures, I/O or protocol errors, END_REQUEST with a status other
//!   than REQUEST_COMPLETE, and answers with a CGI `Status:` of 400 or more;
//! - `stalled`: connections that went more than a second without completing a request
//!   during the measured window (a backend with fewer workers than connections).
//!
//! `--threads N` (default 1): 1 runs everything on a current-thread runtime.

#[path = "support/runtime.rs"]
mod runtime;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tower_fastcgi::proto::{
    BeginRequest, Decoder, ParamsEncoder, ProtocolStatus, Record, RecordType, Role, encode_stream,
};

/// A gap without a completed request longer than this marks the connection as stalled.
const STALL: Duration = Duration::from_secs(1);

/// How much of the CGI head is examined for a `Status:` line.
const HEAD_LIMIT: usize = 8 * 1024;

#[derive(Clone, Debug)]
enum Target {
    Tcp(String),
    Unix(PathBuf),
}

#[derive(Debug)]
struct Args {
    target: Target,
    conns: usize,
    duration: f64,
    warmup: f64,
    method: String,
    script: String,
    uri: String,
    query: String,
    body: usize,
    threads: usize,
}

const USAGE: &str = "usage: fcgi_load (--tcp HOST:PORT | --unix PATH) [-c CONNS] [-d SECS] \
    [--warmup SECS] [--method M] [--script SCRIPT_FILENAME] [--uri REQUEST_URI] \
    [--query QUERY_STRING] [--body BYTES] [--threads N]";

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut target = None;
    let mut parsed = Args {
        target: Target::Tcp(String::new()),
        conns: 1,
        duration: 5.0,
        warmup: 0.0,
        method: String::new(),
        script: "/srv/app/index".into(),
        uri: String::new(),
        query: String::new(),
        body: 0,
        threads: 1,
    };
    fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{name} {v}: expected a number"))
    }
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--tcp" => target = Some(Target::Tcp(value("--tcp")?)),
            "--unix" => target = Some(Target::Unix(value("--unix")?.into())),
            "-c" | "--conns" => parsed.conns = number("-c", &value("-c")?)?,
            "-d" | "--duration" => parsed.duration = number("-d", &value("-d")?)?,
            "--warmup" => parsed.warmup = number("--warmup", &value("--warmup")?)?,
            "--method" => parsed.method = value("--method")?,
            "--script" => parsed.script = value("--script")?,
            "--uri" => parsed.uri = value("--uri")?,
            "--query" => parsed.query = value("--query")?,
            "--body" => parsed.body = number("--body", &value("--body")?)?,
            "--threads" => parsed.threads = number("--threads", &value("--threads")?)?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    parsed.target = target.ok_or_else(|| format!("no target\n{USAGE}"))?;
    if parsed.conns == 0 || parsed.threads == 0 {
        return Err("-c and --threads must be at least 1".into());
    }
    if !parsed.duration.is_finite()
        || parsed.duration <= 0.0
        || !parsed.warmup.is_finite()
        || parsed.warmup < 0.0
    {
        return Err("-d must be positive and --warmup not negative".into());
    }
    if parsed.method.is_empty() {
        parsed.method = if parsed.body > 0 { "POST" } else { "GET" }.into();
    }
    if parsed.uri.is_empty() {
        parsed.uri = parsed.script.clone();
        if !parsed.query.is_empty() {
            parsed.uri = format!("{}?{}", parsed.uri, parsed.query);
        }
    }
    Ok(parsed)
}

/// The whole request, encoded once and sent as is on every iteration (request id 1).
fn encode_request(args: &Args) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    Record::BeginRequest {
        request_id: 1,
        body: BeginRequest {
            role: Role::Responder,
            keep_conn: true,
        },
    }
    .encode(&mut buf);
    let body_len = args.body.to_string();
    let script_name = args.uri.split('?').next().unwrap_or_default().to_owned();
    let mut params: Vec<(&str, &str)> = vec![
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "fcgi_load"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
        ("REQUEST_METHOD", &args.method),
        ("SCRIPT_FILENAME", &args.script),
        ("SCRIPT_NAME", &script_name),
        ("REQUEST_URI", &args.uri),
        ("QUERY_STRING", &args.query),
        ("HTTP_HOST", "127.0.0.1"),
    ];
    if args.body > 0 {
        params.push(("CONTENT_LENGTH", &body_len));
        params.push(("CONTENT_TYPE", "application/octet-stream"));
    }
    let mut enc = ParamsEncoder::new(&mut buf, 1);
    for (name, value) in params {
        enc.push(name.as_bytes(), value.as_bytes())
            .map_err(|e| format!("{name}: {e}"))?;
    }
    enc.finish();
    if args.body > 0 {
        let body = vec![b'x'; args.body];
        encode_stream(&mut buf, RecordType::Stdin, 1, &body);
    }
    encode_stream(&mut buf, RecordType::Stdin, 1, b"");
    Ok(buf.freeze())
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn connect(target: &Target) -> io::Result<Box<dyn Io>> {
    match target {
        Target::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        Target::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One open connection with its read buffer and decoder.
struct Conn {
    io: Box<dyn Io>,
    buf: BytesMut,
    decoder: Decoder,
}

/// Outcome of one exchange that reached END_REQUEST.
struct Answer {
    stdout_bytes: u64,
    /// The CGI status was 400 or more, or the protocol status was not REQUEST_COMPLETE.
    failed: bool,
}

impl Conn {
    async fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.io.write_all(request).await?;
        let mut stdout_bytes = 0u64;
        let mut head = Vec::new();
        let mut status = None;
        loop {
            let record = match self.decoder.decode(&mut self.buf) {
                Ok(Some(record)) => record,
                Ok(None) => {
                    if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                        self.buf.reserve(64 * 1024);
                    }
                    if self.io.read_buf(&mut self.buf).await? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the backend closed the connection before END_REQUEST",
                        ));
                    }
                    continue;
                }
                Err(e) => return Err(invalid(e.to_string())),
            };
            match record {
                Record::Stdout {
                    request_id: 1,
                    data,
                } => {
                    stdout_bytes += data.len() as u64;
                    if status.is_none() && head.len() < HEAD_LIMIT {
                        head.extend_from_slice(&data[..data.len().min(HEAD_LIMIT)]);
                        status = cgi_status(&head);
                    }
                }
                Record::Stderr { .. } => {}
                Record::EndRequest {
                    request_id: 1,
                    body,
                } => {
                    let bad_status = status.flatten().is_some_and(|s| s >= 400);
                    return Ok(Answer {
                        stdout_bytes,
                        failed: bad_status
                            || body.protocol_status != ProtocolStatus::RequestComplete,
                    });
                }
                other => return Err(invalid(format!("unexpected record {other:?}"))),
            }
        }
    }
}

/// `Some(status)` once the head is complete (`None` inside when it has no `Status:` line),
/// `None` while more of the head is needed.
fn cgi_status(head: &[u8]) -> Option<Option<u16>> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| head.windows(2).position(|w| w == b"\n\n"));
    let end = match end {
        Some(end) => end,
        None if head.len() >= HEAD_LIMIT => head.len(),
        None => return None,
    };
    for line in head[..end].split(|b| *b == b'\n') {
        if line.len() > 7 && line[..7].eq_ignore_ascii_case(b"status:") {
            let value = String::from_utf8_lossy(&line[7..]);
            return Some(value.trim().get(..3).and_then(|s| s.parse().ok()));
        }
    }
    Some(None)
}

/// What one connection task measured.
#[derive(Default)]
struct ConnStats {
    latencies_ns: Vec<u64>,
    errors: u64,
    stdout_bytes: u64,
    stalled: bool,
}

async fn drive(target: Target, request: Bytes, measure_from: Instant, end: Instant) -> ConnStats {
    let mut stats = ConnStats::default();
    let mut conn: Option<Conn> = None;
    let mut last_progress = measure_from;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match tokio::time::timeout_at(end, connect(&target)).await {
                Ok(Ok(io)) => conn.insert(Conn {
                    io,
                    buf: BytesMut::with_capacity(64 * 1024),
                    decoder: Decoder::new(),
                }),
                Ok(Err(_)) => {
                    stats.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(_) => break,
            },
        };
        let started = Instant::now();
        let outcome = match tokio::time::timeout_at(end, c.exchange(&request)).await {
            Ok(outcome) => outcome,
            Err(_) => break, // in flight at the end: abandoned
        };
        let done = Instant::now();
        match outcome {
            Ok(answer) => {
                if done >= measure_from {
                    if done.duration_since(last_progress) > STALL {
                        stats.stalled = true;
                    }
                    last_progress = done;
                    stats
                        .latencies_ns
                        .push(done.duration_since(started).as_nanos() as u64);
                    stats.stdout_bytes += answer.stdout_bytes;
                    if answer.failed {
                        stats.errors += 1;
                    }
                }
            }
            Err(_) => {
                if done >= measure_from {
                    stats.errors += 1;
                }
                conn = None;
            }
        }
    }
    if end.duration_since(last_progress) > STALL {
        stats.stalled = true;
    }
    stats
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1e6
}

async fn run(args: Args) -> Result<String, String> {
    let request = encode_request(&args)?;
    // Fail early (and clearly) when nothing listens.
    connect(&args.target)
        .await
        .map_err(|e| format!("cannot connect to {:?}: {e}", args.target))?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.conns {
        tasks.spawn(drive(
            args.target.clone(),
            request.clone(),
            measure_from,
            end,
        ));
    }
    let mut latencies = Vec::new();
    let (mut errors, mut stalled, mut bytes) = (0u64, 0u64, 0u64);
    while let Some(joined) = tasks.join_next().await {
        let stats = joined.map_err(|e| format!("connection task failed: {e}"))?;
        latencies.extend_from_slice(&stats.latencies_ns);
        errors += stats.errors;
        stalled += u64::from(stats.stalled);
        bytes += stats.stdout_bytes;
    }
    let elapsed = Instant::now().duration_since(measure_from).as_secs_f64();
    latencies.sort_unstable();
    let n = latencies.len() as u64;
    let mean_ms = if n == 0 {
        0.0
    } else {
        latencies.iter().sum::<u64>() as f64 / n as f64 / 1e6
    };
    let target = match &args.target {
        Target::Tcp(a) => format!("tcp://{a}"),
        Target::Unix(p) => format!("unix:{}", p.display()),
    };
    Ok(format!(
        concat!(
            "{{\"tool\":\"fcgi_load\",\"target\":{:?},\"conns\":{},\"duration_s\":{:.3},",
            "\"method\":{:?},\"script\":{:?},\"query\":{:?},\"body\":{},",
            "\"requests\":{},\"rps\":{:.1},\"mean_ms\":{:.4},\"p50_ms\":{:.4},",
            "\"p90_ms\":{:.4},\"p99_ms\":{:.4},\"max_ms\":{:.4},",
            "\"bytes_per_response\":{},\"errors\":{},\"stalled\":{}}}"
        ),
        target,
        args.conns,
        elapsed,
        args.method,
        args.script,
        args.query,
        args.body,
        n,
        n as f64 / args.duration,
        mean_ms,
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
        bytes.checked_div(n).unwrap_or(0),
        errors,
        stalled,
    ))
}

fn main() -> ExitCode {
    runtime::main(
        "fcgi_load",
        parse_args(),
        |args| args.threads,
        |args| async {
            match run(args).await {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(msg) => {
                    eprintln!("fcgi_load: {msg}");
                    ExitCode::FAILURE
                }
            }
        },
    )
}
