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

#[path = "support/responder.rs"]
mod responder;
#[path = "support/runtime.rs"]
mod runtime;

use std::io;
use std::process::ExitCode;
use std::sync::Arc;

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
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        tcp: Vec::new(),
        unix: Vec::new(),
        threads: 1,
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
            "-h" | "--help" => {
                return Err(
                    "usage: bench_responder [--tcp HOST:PORT]... [--unix PATH]... [--threads N]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
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
    let mut tasks = tokio::task::JoinSet::new();
    for addr in &args.tcp {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("listening on tcp {}", listener.local_addr()?);
        tasks.spawn(responder::serve(
            Listen::Tcp(listener),
            handle,
            Arc::clone(&stats),
        ));
    }
    for path in &args.unix {
        // A stale socket file from an earlier run would make bind fail.
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)?;
        println!("listening on unix {path}");
        tasks.spawn(responder::serve(
            Listen::Unix(listener, path.into()),
            handle,
            Arc::clone(&stats),
        ));
    }
    tokio::select! {
        _ = tasks.join_next() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    for path in &args.unix {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// The application: 13 bytes, or N bytes of `x`; request bodies are discarded.
async fn handle(mut req: Request, mut out: Writer) -> io::Result<(Request, Writer, After)> {
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
