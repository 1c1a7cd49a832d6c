//! A minimal FastCGI backend for benchmarks: answers quickly and costs little CPU, so that
//! a gateway in front of it is what gets measured.
//!
//! ```text
//! cargo run --release --example bench_responder -- --tcp 127.0.0.1:9500 --unix /tmp/r.sock
//! ```
//!
//! - `GET` with an empty or non-numeric `QUERY_STRING`: `Hello, world!` (13 bytes);
//! - `QUERY_STRING` = a number N: N bytes of `x`, written in 64 KiB chunks;
//! - a request body (POST) is read and discarded before the 13-byte answer.
//!
//! Every answer carries `Content-Length`. Connections are kept open when the web server
//! sets FCGI_KEEP_CONN. `--threads N` picks the runtime: 1 (the default) is a
//! current-thread runtime, more is a multi-thread runtime with N workers.
//!
//! `--mpx N` multiplexes (`support/mux_responder.rs`): FCGI_GET_VALUES answers
//! `FCGI_MPXS_CONNS=1` and `FCGI_MAX_REQS=N` (and `FCGI_MAX_CONNS=M` with
//! `--max-conns M`), every request of a connection runs concurrently, and
//! FCGI_ABORT_REQUEST ends a request with REQUEST_COMPLETE. Without it the responder is the
//! one-request-at-a-time engine it always was (MPXS_CONNS=0).
//!
//! At exit (Ctrl-C) and on SIGUSR1 it prints to stderr the connections it accepted, the
//! requests served and, with `--mpx`, the most requests open at once on one connection.

// `pub`: tests/mux_backends.rs includes this example as a module and starts the engine.
#[path = "support/mux_responder.rs"]
pub mod mux_responder;
#[path = "support/responder.rs"]
pub mod responder;
#[path = "support/runtime.rs"]
mod runtime;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mux_responder::{MuxConfig, MuxRequest, MuxStats, MuxWriter};
use responder::{After, Listen, Request, Stats, Writer};

/// Size of the pieces a large body is written in.
const CHUNK: usize = 64 * 1024;

/// The source of `x` bytes for large bodies.
static XS: [u8; CHUNK] = [b'x'; CHUNK];

const HELLO: &[u8] = b"Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

struct Args {
    tcp: Vec<String>,
    unix: Vec<String>,
    threads: usize,
    /// `--mpx N`: multiplex, advertising FCGI_MAX_REQS = N.
    mpx: Option<u32>,
    max_conns: Option<u32>,
}

fn positive(name: &str, v: &str) -> Result<u32, String> {
    v.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{name} {v}: expected a positive number"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        tcp: Vec::new(),
        unix: Vec::new(),
        threads: 1,
        mpx: None,
        max_conns: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--tcp" => parsed.tcp.push(value("--tcp")?),
            "--unix" => parsed.unix.push(value("--unix")?),
            "--threads" => {
                let v = value("--threads")?;
                parsed.threads = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--threads {v}: expected a positive number"))?;
            }
            "--mpx" => parsed.mpx = Some(positive("--mpx", &value("--mpx")?)?),
            "--max-conns" => {
                parsed.max_conns = Some(positive("--max-conns", &value("--max-conns")?)?);
            }
            "-h" | "--help" => {
                return Err(
                    "usage: bench_responder [--tcp HOST:PORT]... [--unix PATH]... \
                     [--threads N] [--mpx N [--max-conns N]]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if parsed.max_conns.is_some() && parsed.mpx.is_none() {
        return Err("--max-conns needs --mpx".into());
    }
    if parsed.tcp.is_empty() && parsed.unix.is_empty() {
        return Err("nothing to listen on: add --tcp HOST:PORT and/or --unix PATH".into());
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    runtime::main(
        "bench_responder",
        parse_args(),
        |args| args.threads,
        |args| async {
            match run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("bench_responder: {err}");
                    ExitCode::FAILURE
                }
            }
        },
    )
}

async fn run(args: Args) -> io::Result<()> {
    let stats = Arc::new(Stats::default());
    let mux = Arc::new(MuxStats::default());
    let mut listens = Vec::new();
    for addr in &args.tcp {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("listening on tcp {}", listener.local_addr()?);
        listens.push(Listen::Tcp(listener));
    }
    for path in &args.unix {
        // A stale socket file from an earlier run would make bind fail.
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)?;
        println!("listening on unix {path}");
        listens.push(Listen::Unix(listener, path.into()));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for listen in listens {
        let stats = Arc::clone(&stats);
        match args.mpx {
            Some(max_reqs) => {
                let config = MuxConfig {
                    max_reqs,
                    max_conns: args.max_conns,
                };
                let mux = Arc::clone(&mux);
                tasks.spawn(mux_responder::serve(listen, handle_mux, config, stats, mux));
            }
            None => {
                tasks.spawn(responder::serve(listen, handle, stats));
            }
        }
    }
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            _ = tasks.join_next() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = usr1.recv() => report(&stats, &mux, args.mpx.is_some()),
        }
    }
    report(&stats, &mux, args.mpx.is_some());
    for path in &args.unix {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// One line on stderr: what the benchmark's backend side saw.
fn report(stats: &Stats, mux: &MuxStats, mpx: bool) {
    let connections = stats.connections.load(Ordering::SeqCst);
    let requests = stats.requests.load(Ordering::SeqCst);
    if mpx {
        eprintln!(
            "bench_responder: {connections} connections accepted, {requests} requests, \
             at most {} open at once on one connection, {} aborted",
            mux.peak_streams.load(Ordering::SeqCst),
            mux.aborts.load(Ordering::SeqCst)
        );
    } else {
        eprintln!("bench_responder: {connections} connections accepted, {requests} requests");
    }
}

/// [`handle`] for the multiplexing engine (STDIN was already counted and discarded), plus
/// `QUERY_STRING` = `sleep=MS`: the 13 bytes after MS ms, so that tests can hold a stream
/// open while others run.
pub fn handle_mux<'a>(
    req: &'a MuxRequest,
    out: &'a mut MuxWriter,
) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>> {
    Box::pin(async move {
        let head_only = req.param("REQUEST_METHOD") == "HEAD";
        match req.param("QUERY_STRING").parse::<u64>() {
            Ok(len) => {
                let head = format!("Content-Type: text/plain\r\nContent-Length: {len}\r\n\r\n");
                out.stdout(head.as_bytes()).await?;
                let mut left = if head_only { 0 } else { len };
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    out.stdout(&XS[..n]).await?;
                    left -= n as u64;
                }
            }
            Err(_) => {
                if let Some(ms) = req.param("QUERY_STRING").strip_prefix("sleep=") {
                    let ms = ms.parse().unwrap_or(0);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                let hello = if head_only {
                    &HELLO[..HELLO.len() - 13]
                } else {
                    HELLO
                };
                out.stdout(hello).await?;
            }
        }
        Ok(())
    })
}

/// The application: 13 bytes, or N bytes of `x`; request bodies are discarded.
pub async fn handle(mut req: Request, mut out: Writer) -> io::Result<(Request, Writer, After)> {
    req.drain_stdin().await?;
    let head_only = req.param("REQUEST_METHOD") == "HEAD";
    match req.param("QUERY_STRING").parse::<u64>() {
        Ok(len) => {
            let head = format!("Content-Type: text/plain\r\nContent-Length: {len}\r\n\r\n");
            out.stdout(head.as_bytes()).await?;
            let mut left = if head_only { 0 } else { len };
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                out.stdout(&XS[..n]).await?;
                left -= n as u64;
            }
        }
        Err(_) if head_only => {
            out.stdout(&HELLO[..HELLO.len() - 13]).await?;
        }
        Err(_) => out.stdout(HELLO).await?,
    }
    out.end(0).await?;
    Ok((req, out, After::KeepIfAsked))
}
