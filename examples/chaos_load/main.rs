//! The load side of `scripts/chaos.sh`: mixed HTTP traffic against a gateway whose
//! backends are being killed, stopped and reloaded, every body checked end to end, and
//! one summary line at the end.
//!
//! ```text
//! chaos_load --url http://127.0.0.1:8080 --seconds 100 --concurrency 10 \
//!     --gateway-pid 1234 --events /tmp/chaos/events --settle 20
//! ```
//!
//! The PHP scripts it talks to (written by `scripts/chaos.sh`) put the SHA-256 of what
//! they sent (`/download.php`, `/small.php`) or of what they read (`/echo.php`) in
//! `X-Sha256`, computed before the first byte leaves PHP, so a body the gateway
//! corrupted, mixed up or cut short is told apart from the one the backend meant.
//!
//! The events file has one line per fault, `EPOCH_MS KIND BACKEND`, KIND being `kill`,
//! `reload` (in-flight requests on that backend die), `stop`, `cont` or `start`; it is read
//! after the load to decide which failures the rules allow (`judge.rs`, RELIABILITY.md).
//! Exit status 1 when a must-be-zero count is not zero, 2 on a usage error.

mod judge;
mod load;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

use judge::{Faults, Verdict, judge};
use load::{Outcome, Record, Rng};

struct Args {
    url: String,
    seconds: u64,
    concurrency: usize,
    gateway_pid: u32,
    events: String,
    settle: u64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        seconds: 60,
        concurrency: 8,
        gateway_pid: 0,
        events: String::new(),
        settle: 20,
        seed: 0x5eed,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--url" => args.url = value.trim_end_matches('/').to_owned(),
            "--seconds" => args.seconds = number()?,
            "--concurrency" => args.concurrency = number()?.max(1) as usize,
            "--gateway-pid" => args.gateway_pid = number()? as u32,
            "--events" => args.events = value,
            "--settle" => args.settle = number()?,
            "--seed" => args.seed = number()?.max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.url.is_empty() || args.gateway_pid == 0 || args.events.is_empty() {
        return Err(
            "usage: chaos_load --url URL --gateway-pid PID --events FILE [--seconds N] \
                    [--concurrency N] [--settle SECS] [--seed N]"
                .into(),
        );
    }
    Ok(args)
}

/// The gateway's resident set (KiB) and open descriptors, from /proc.
fn probe(pid: u32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

/// What each open descriptor of `pid` points at (sockets with their inode), for a leak report.
fn describe_fds(pid: u32) -> String {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return String::new();
    };
    let mut out: Vec<String> = dir
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).map(|t| t.display().to_string());
            format!(
                "{}={}",
                e.file_name().to_string_lossy(),
                target.unwrap_or_default()
            )
        })
        .collect();
    out.sort();
    // Sockets: their TCP endpoints and state, from /proc/net/tcp (state 01 is
    // ESTABLISHED, 08 CLOSE_WAIT, 0A LISTEN).
    let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    for line in tcp.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let (Some(local), Some(remote), Some(state), Some(inode)) =
            (f.get(1), f.get(2), f.get(3), f.get(9))
        {
            let tag = format!("socket:[{inode}]");
            for entry in out.iter_mut().filter(|e| e.ends_with(&tag)) {
                entry.push_str(&format!("({local}->{remote} st={state})"));
            }
        }
    }
    out.join(" ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("chaos_load: {msg}");
            return ExitCode::from(2);
        }
    };
    let (rss_start, fds_start) = probe(args.gateway_pid);
    let peak = Arc::new(AtomicU64::new(rss_start));
    let sampler = tokio::spawn({
        let (peak, pid) = (peak.clone(), args.gateway_pid);
        async move {
            loop {
                let (rss, _) = probe(pid);
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: load::HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build(connector);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let (client, base) = (client.clone(), args.url.clone());
            let mut rng = Rng(args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64 + 1));
            tokio::spawn(async move {
                let mut done = Vec::new();
                while Instant::now() < deadline {
                    let kind = load::pick(&mut rng);
                    let start_ms = load::now_ms();
                    let sent = load::one(&client, &base, kind, &mut rng);
                    let outcome = tokio::time::timeout(load::REQUEST_TIMEOUT, sent)
                        .await
                        .unwrap_or_else(|_| Outcome::FailedHead("driver timeout".into()));
                    let end_ms = load::now_ms();
                    done.push(Record {
                        kind,
                        start_ms,
                        end_ms,
                        outcome,
                    });
                }
                done
            })
        })
        .collect();
    let mut records = Vec::new();
    for worker in workers {
        records.extend(worker.await.unwrap_or_default());
    }
    // Our idle keep-alive connections are gateway descriptors too: close them first.
    drop(client);

    // Let the gateway's idle backend connections expire (idle_timeout) before counting.
    let settle_until = Instant::now() + Duration::from_secs(args.settle);
    let mut end = probe(args.gateway_pid);
    while end.1 > fds_start && Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        end = probe(args.gateway_pid);
    }
    sampler.abort();
    let rss_peak = peak.load(Ordering::Relaxed).max(end.0);

    let faults = Faults::parse(&std::fs::read_to_string(&args.events).unwrap_or_default());
    let mut by: BTreeMap<Verdict, usize> = BTreeMap::new();
    let mut shown = 0;
    let mut causes: BTreeMap<(Verdict, &str), usize> = BTreeMap::new();
    for record in &records {
        let verdict = judge(record, &faults);
        *by.entry(verdict).or_default() += 1;
        if let Some(cause) = record.outcome.cause() {
            *causes.entry((verdict, cause)).or_default() += 1;
        }
        if matches!(
            verdict,
            Verdict::Disallowed | Verdict::Mismatch | Verdict::FalseComplete
        ) && shown < 20
        {
            shown += 1;
            eprintln!(
                "chaos_load: {verdict:?}: {:?} {}..{} ({} ms): {:?}",
                record.kind,
                record.start_ms,
                record.end_ms,
                record.end_ms - record.start_ms,
                record.outcome
            );
        }
    }
    for ((verdict, cause), count) in &causes {
        eprintln!("chaos_load: {count} × {verdict:?}: {cause}");
    }
    let n = |v: Verdict| by.get(&v).copied().unwrap_or(0);
    let allowed = n(Verdict::PostOnKilled) + n(Verdict::CutMidResponse) + n(Verdict::NoBackendLeft);
    let fd_leak = end.1.saturating_sub(fds_start);
    if fd_leak > 0 {
        eprintln!(
            "chaos_load: gateway descriptors at the end: {}",
            describe_fds(args.gateway_pid)
        );
    }
    let must_be_zero =
        n(Verdict::Mismatch) + n(Verdict::FalseComplete) + n(Verdict::Disallowed) + fd_leak;
    let faults_line: Vec<String> = faults
        .counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "chaos: requests={} ok={} vanished={} checksum_mismatch={} false_complete={} \
         allowed={allowed} (post_on_killed={} cut_mid_response={} no_backend_left={}) \
         disallowed={} faults[{}] gateway_rss_kib start/peak/end={rss_start}/{rss_peak}/{} \
         fds start/end={fds_start}/{} -> {}",
        records.len(),
        n(Verdict::Ok),
        n(Verdict::Vanished),
        n(Verdict::Mismatch),
        n(Verdict::FalseComplete),
        n(Verdict::PostOnKilled),
        n(Verdict::CutMidResponse),
        n(Verdict::NoBackendLeft),
        n(Verdict::Disallowed),
        faults_line.join(" "),
        end.0,
        end.1,
        if must_be_zero == 0 { "PASS" } else { "FAIL" },
    );
    if must_be_zero == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
