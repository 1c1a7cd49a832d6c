//! Issue 13: the multiplexing backends the multiplexing tests and the benchmark run
//! against, each proven at the raw record level (no `FcgiService` involved): what it
//! answers to FCGI_GET_VALUES, that two or more request ids interleaved on ONE connection
//! are all answered correctly (a short request begun after a long one ends first), and
//! what FCGI_ABORT_REQUEST does to one request while another completes.
//!
//! What the backends do, as observed here (and pinned by the tests below):
//!
//! | backend | GET_VALUES(MAX_CONNS, MAX_REQS, MPXS_CONNS) answer | ABORT during STDIN | ABORT after STDIN ended |
//! |---|---|---|---|
//! | Go 1.19 `net/http/fcgi` | `{MPXS_CONNS=1}` then a second, empty GET_VALUES_RESULT | END_REQUEST at once, then the handler's own answer and a second END_REQUEST (the body read fails; the context is not cancelled) | ignored: the full answer |
//! | tokio-fastcgi 1.3 | `{MAX_CONNS, MAX_REQS, MPXS_CONNS=1}` (its limits) | END_REQUEST at once, nothing more | END_REQUEST at once, then the handler's answer and a second END_REQUEST |
//! | flup 1.0.3 `multiplexed=True`, Python 3 | one empty GET_VALUES_RESULT (bytes/str bug) | ignored: no END_REQUEST ever (the app blocks on STDIN) | ignored: the full answer |
//! | `bench_responder --mpx N` | `{MAX_CONNS=M if given, MAX_REQS=N, MPXS_CONNS=1}` | END_REQUEST at once | one END_REQUEST, at the handler's next write, without output |
//!
//! So a multiplexing client must not reuse an aborted id as soon as its first END_REQUEST
//! arrives (Go and tokio-fastcgi may send more for it), and must not wait forever for the
//! END_REQUEST of an aborted flup request.
//!
//! Go and flup skip loudly when not installed (`FCGI_INTEROP=require` fails); the
//! tokio-fastcgi responder and the benchmark's engine run in process.

mod support;

// The benchmark responder itself, so that its `--mpx` engine and application are what is
// tested here (its responder.rs is also in the support tree's fake backend: two copies).
#[allow(dead_code, unreachable_pub, clippy::duplicate_mod)]
#[path = "../examples/bench_responder.rs"]
mod bench;

use std::sync::Arc;
use std::time::Duration;

use tower_fastcgi::proto::{ProtocolStatus, RecordType};

use support::backends::go_fcgi::GoFcgi;
use support::mux_client::{MuxConn, mux_params};
use support::record_tap::Tap;
use support::tokio_mux::TokioMux;
use support::{Addr, Kind, Options, RunningBackend, one_at_a_time, stream_pattern};

const NAMES: [&str; 3] = ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"];

/// How long a test waits for records that may or may not come.
const SETTLE: Duration = Duration::from_millis(500);

type Pairs = Vec<(String, String)>;

fn pairs(list: &[(&str, &str)]) -> Pairs {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// Asks GET_VALUES on a fresh connection; every GET_VALUES_RESULT that came within
/// [`SETTLE`], and whether the connection stayed open.
fn get_values(addr: &Addr) -> (Vec<Pairs>, bool) {
    let mut conn = MuxConn::connect(addr);
    conn.ask_values(&NAMES);
    let open = conn.read_for(SETTLE);
    (conn.values_results(), open)
}

/// `target` for a slow request of `ms` milliseconds tagged `tag` (the Go, flup and
/// tokio-fastcgi route; the benchmark responder's is different).
fn slow(ms: u32, tag: &str) -> String {
    format!("/slow?ms={ms}&tag={tag}")
}

/// A 400 ms request, then a 20 ms one, on one connection: the second ends first and both
/// answers are right; then the connection still serves a third.
fn check_interleaving(
    addr: &Addr,
    target: &dyn Fn(u32, &str) -> String,
    expect: &dyn Fn(&str) -> String,
) {
    let mut conn = MuxConn::connect(addr);
    conn.request(1, &mux_params("GET", &target(400, "one")), b"");
    conn.request(2, &mux_params("GET", &target(20, "two")), b"");
    let two = conn.wait_end(2);
    let one = conn.wait_end(1);
    assert!(two.text().contains(&expect("two")), "{}", two.text());
    assert!(one.text().contains(&expect("one")), "{}", one.text());
    assert_eq!(one.end.protocol_status, ProtocolStatus::RequestComplete);
    assert!(
        conn.position_of_end(2) < conn.position_of_end(1),
        "the short request should end first: {:?}",
        conn.arrivals
    );
    conn.request(1, &mux_params("GET", &target(0, "again")), b"");
    assert!(conn.wait_end(1).text().contains(&expect("again")));
}

/// Id 1 is begun with part of its STDIN; id 2 is a whole 200 ms request; id 1 is
/// aborted. Id 2 is answered correctly; returns the connection for the id-1 checks.
fn abort_during_stdin(addr: &Addr, target: &dyn Fn(u32, &str) -> String, expect: &str) -> MuxConn {
    let mut conn = MuxConn::connect(addr);
    let mut params = mux_params("POST", "/echo");
    params.set("CONTENT_LENGTH", "100");
    conn.begin(1, &params);
    conn.stdin(1, b"the first 26 bytes of 100.");
    conn.request(2, &mux_params("GET", &target(200, "two")), b"");
    // Let the backend start id 1 (Go starts its handler at the first STDIN record).
    std::thread::sleep(Duration::from_millis(50));
    conn.abort(1);
    let two = conn.wait_end(2);
    assert!(two.text().contains(expect), "{}", two.text());
    conn.read_for(SETTLE);
    conn
}

/// Id 3 is a whole 300 ms request, aborted 50 ms in; id 4 is a short one sent after the
/// abort and must be answered.
fn abort_after_stdin(conn: &mut MuxConn, target: &dyn Fn(u32, &str) -> String, expect: &str) {
    conn.request(3, &mux_params("GET", &target(300, "three")), b"");
    std::thread::sleep(Duration::from_millis(50));
    conn.abort(3);
    conn.request(4, &mux_params("GET", &target(10, "four")), b"");
    let four = conn.wait_end(4);
    assert!(four.text().contains(expect), "{}", four.text());
    conn.read_for(Duration::from_millis(600));
}

// ---- Go net/http/fcgi ----

fn go_expect(tag: &str) -> String {
    format!("slow tag={tag} ")
}

/// Go answers `FCGI_MPXS_CONNS=1` whatever was asked, then a second, empty
/// GET_VALUES_RESULT (its pair writer closes the "stream" with an empty record), and
/// keeps the connection open.
#[test]
fn go_get_values_is_mpxs_conns_1_then_an_empty_record() {
    let Some(go) = GoFcgi::start_or_skip() else {
        return;
    };
    let (answers, open) = get_values(go.addr());
    assert_eq!(answers, vec![pairs(&[("FCGI_MPXS_CONNS", "1")]), vec![]]);
    assert!(open, "the connection stays open");
}

/// Four requests of all routes on one connection, interleaved; the counters see one
/// connection and two handlers at once.
#[test]
fn go_serves_interleaved_requests_on_one_connection() {
    let Some(go) = GoFcgi::start_tcp_or_skip() else {
        return;
    };
    check_interleaving(go.addr(), &slow, &go_expect);

    let mut conn = MuxConn::connect(go.addr());
    conn.request(1, &mux_params("GET", &slow(300, "long")), b"");
    conn.request(2, &mux_params("POST", "/echo"), b"echo me");
    conn.request(3, &mux_params("GET", "/big?bytes=100000"), b"");
    conn.request(4, &mux_params("GET", "/env?x=1"), b"");
    assert_eq!(conn.wait_end(2).body(), b"echo me");
    assert_eq!(conn.wait_end(3).body(), stream_pattern(100_000));
    let env = conn.wait_end(4).text();
    assert!(
        env.contains("QUERY_STRING=x=1\n") && env.contains("REQUEST_METHOD=GET\n"),
        "{env}"
    );
    assert!(conn.wait_end(1).text().contains("tag=long"));
    assert_eq!(
        conn.position_of_end(1),
        Some(conn.arrivals.len() - 1),
        "the long one ends last"
    );

    let counters = go.wait_for(SETTLE, |c| c.inflight == 0);
    assert_eq!(counters.accepted, 2, "{counters:?}");
    assert!(counters.peak >= 2, "{counters:?}");
    assert_eq!(counters.completed, 7, "{counters:?}");
}

/// An abort during STDIN: Go ends the request at once, but its handler (already running,
/// reading the body) still answers, with a second END_REQUEST for the same id; the
/// handler's context is not cancelled. The other request is not disturbed.
#[test]
fn go_abort_during_stdin_ends_at_once_then_the_handler_answers_again() {
    let Some(go) = GoFcgi::start_or_skip() else {
        return;
    };
    let conn = abort_during_stdin(go.addr(), &slow, "slow tag=two");
    assert_eq!(conn.end_count(1), 2, "{:?}", conn.arrivals);
    let answers = conn.ended(1);
    assert!(
        answers[0].stdout.is_empty(),
        "the abort's END_REQUEST comes first"
    );
    let late = answers[1].text();
    assert!(late.contains("request aborted by web server"), "{late}");
    assert!(
        late.contains("context: <nil>"),
        "the context is not cancelled: {late}"
    );
    assert_eq!(go.counters().body_errors, 1);
}

/// An abort after the request's empty STDIN is ignored: the full answer, one END_REQUEST.
#[test]
fn go_ignores_an_abort_after_the_request_was_sent() {
    let Some(go) = GoFcgi::start_or_skip() else {
        return;
    };
    let mut conn = MuxConn::connect(go.addr());
    abort_after_stdin(&mut conn, &slow, "slow tag=four");
    assert_eq!(conn.end_count(3), 1, "{:?}", conn.arrivals);
    assert!(conn.ended(3)[0].text().contains("slow tag=three"));
}

/// The record tap in front of Go: the bytes pass unchanged (the answers are right) and
/// the records are counted per connection.
#[test]
fn the_tap_counts_what_go_is_sent() {
    let Some(go) = GoFcgi::start_or_skip() else {
        return;
    };
    let tap = Tap::start(go.addr());
    let (answers, _) = get_values(&tap.addr());
    assert_eq!(answers.len(), 2, "{answers:?}");
    check_interleaving(&tap.addr(), &slow, &go_expect);
    let conn = abort_during_stdin(&tap.addr(), &slow, "slow tag=two");
    drop(conn);

    let stats = tap.wait_for(SETTLE, |s| s.open_connections() == 0);
    assert_eq!(stats.connections.len(), 3, "{stats:#?}");
    assert_eq!(stats.question_connections(), 1);
    assert_eq!(stats.get_values(), 1);
    assert_eq!(
        stats.connections[0].get_values_results, 2,
        "Go's second answer record"
    );
    assert_eq!(stats.request_connections(), 2);
    assert_eq!(stats.connections[1].begin_ids, [1, 2, 1]);
    assert_eq!(stats.max_open(), 2, "{stats:#?}");
    assert_eq!(stats.aborts(), [1]);
    // Go ended id 1 twice on the abort's connection; ids 1 and 2 and the reused 1 once
    // each on the other.
    assert_eq!(stats.connections[1].end_ids, [2, 1, 1]);
    assert_eq!(
        stats.connections[2]
            .end_ids
            .iter()
            .filter(|id| **id == 1)
            .count(),
        2
    );
    assert!(
        stats
            .connections
            .iter()
            .all(|c| c.parse_error.is_none() && c.closed)
    );
}

// ---- tokio-fastcgi ----

fn tokio_expect(tag: &str) -> String {
    format!("slow tag={tag} ")
}

/// tokio-fastcgi answers the three values in one record: its limits and
/// `FCGI_MPXS_CONNS=1` (sorted by name in debug builds, in hash order otherwise).
#[test]
fn tokio_fastcgi_get_values_is_its_limits_and_mpxs_conns_1() {
    let mux = TokioMux::start(4, 16);
    let (mut answers, open) = get_values(&mux.addr());
    assert_eq!(answers.len(), 1, "{answers:?}");
    answers[0].sort();
    let want = [
        ("FCGI_MAX_CONNS", "4"),
        ("FCGI_MAX_REQS", "16"),
        ("FCGI_MPXS_CONNS", "1"),
    ];
    assert_eq!(answers[0], pairs(&want));
    assert!(open);
}

#[test]
fn tokio_fastcgi_serves_interleaved_requests_on_one_connection() {
    let mux = TokioMux::start(4, 16);
    check_interleaving(&mux.addr(), &slow, &tokio_expect);
    let mut conn = MuxConn::connect(&mux.addr());
    conn.request(1, &mux_params("GET", "/big?bytes=200000"), b"");
    conn.request(2, &mux_params("POST", "/echo"), b"echo me");
    assert_eq!(conn.wait_end(2).body(), b"echo me");
    assert_eq!(conn.wait_end(1).body(), stream_pattern(200_000));
    let counters = mux.wait_for(SETTLE, |c| c.completed == 5);
    assert_eq!(
        (counters.accepted, counters.completed),
        (2, 5),
        "{counters:?}"
    );
    assert!(counters.peak >= 2, "{counters:?}");
}

/// An abort during STDIN ends the request at once, once; an abort of a running request
/// is answered at once too, and the handler's answer and a second END_REQUEST follow.
#[test]
fn tokio_fastcgi_aborts_end_at_once_and_a_running_handler_ends_again() {
    let mux = TokioMux::start(4, 16);
    let mut conn = abort_during_stdin(&mux.addr(), &slow, "slow tag=two");
    assert_eq!(conn.end_count(1), 1, "{:?}", conn.arrivals);
    assert!(conn.ended(1)[0].stdout.is_empty());

    abort_after_stdin(&mut conn, &slow, "slow tag=four");
    assert_eq!(conn.end_count(3), 2, "{:?}", conn.arrivals);
    assert!(
        conn.ended(3)[0].stdout.is_empty(),
        "the abort's END_REQUEST comes first"
    );
    assert!(conn.ended(3)[1].text().contains("slow tag=three"));
}

// ---- flup, multiplexed ----

fn flup_mux() -> Option<RunningBackend> {
    support::backend_or_skip_with(Kind::FlupUnix, Options::default().multiplexed(true))
}

/// flup 1.0.3 on Python 3 looks the asked names up as `bytes` in a table keyed by `str`:
/// one empty GET_VALUES_RESULT, so a client must be told (`on`) that flup multiplexes.
#[test]
fn flup_multiplexed_get_values_is_empty_on_python3() {
    let _serial = one_at_a_time();
    let Some(flup) = flup_mux() else { return };
    let (answers, open) = get_values(flup.addr());
    assert_eq!(answers, vec![vec![]]);
    assert!(open);
}

#[test]
fn flup_multiplexed_serves_interleaved_requests_on_one_connection() {
    let _serial = one_at_a_time();
    let Some(flup) = flup_mux() else { return };
    check_interleaving(flup.addr(), &slow, &|tag| format!("slow tag={tag} "));
    let mut conn = MuxConn::connect(flup.addr());
    conn.request(1, &mux_params("GET", &slow(200, "long")), b"");
    conn.request(2, &mux_params("POST", "/echo"), b"echo me");
    conn.request(3, &mux_params("GET", "/stream?bytes=100000"), b"");
    assert_eq!(conn.wait_end(2).body(), b"echo me");
    assert_eq!(conn.wait_end(3).body(), stream_pattern(100_000));
    assert!(conn.wait_end(1).text().contains("tag=long"));
}

/// flup only sets a flag nobody reads: an aborted request whose STDIN never ends is never
/// ended (its thread waits for STDIN), and a running one answers in full. The others on
/// the connection are served all the same.
#[test]
fn flup_multiplexed_ignores_abort_request() {
    let _serial = one_at_a_time();
    let Some(flup) = flup_mux() else { return };
    let mut conn = abort_during_stdin(flup.addr(), &slow, "slow tag=two");
    assert_eq!(conn.end_count(1), 0, "{:?}", conn.arrivals);
    abort_after_stdin(&mut conn, &slow, "slow tag=four");
    assert_eq!(conn.end_count(3), 1, "{:?}", conn.arrivals);
    assert!(conn.ended(3)[0].text().contains("slow tag=three"));
}

// ---- bench_responder --mpx ----

/// The benchmark responder's multiplexing engine and application, in a runtime of its own.
struct BenchMux {
    addr: Addr,
    mux: Arc<bench::mux_responder::MuxStats>,
    stats: Arc<bench::responder::Stats>,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl BenchMux {
    /// `mpx`: `Some((max_reqs, max_conns))` for `--mpx`, `None` for the plain engine.
    fn start(mpx: Option<(u32, Option<u32>)>) -> BenchMux {
        let runtime = support::runtime();
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("bench.sock");
        let listener = {
            let _guard = runtime.enter();
            tokio::net::UnixListener::bind(&path).expect("bind")
        };
        let listen = bench::responder::Listen::Unix(listener, path.clone());
        let stats = Arc::new(bench::responder::Stats::default());
        let mux = Arc::new(bench::mux_responder::MuxStats::default());
        match mpx {
            Some((max_reqs, max_conns)) => {
                let config = bench::mux_responder::MuxConfig {
                    max_reqs,
                    max_conns,
                };
                let serve = bench::mux_responder::serve(
                    listen,
                    bench::handle_mux,
                    config,
                    Arc::clone(&stats),
                    Arc::clone(&mux),
                );
                runtime.spawn(serve);
            }
            None => {
                runtime.spawn(bench::responder::serve(
                    listen,
                    bench::handle,
                    Arc::clone(&stats),
                ));
            }
        }
        BenchMux {
            addr: Addr::Unix(path),
            mux,
            stats,
            _runtime: runtime,
            _dir: dir,
        }
    }
}

fn bench_target(ms: u32, _tag: &str) -> String {
    format!("/x?sleep={ms}")
}

/// `--mpx 64 --max-conns 4`: the three values in the order asked, in one record.
#[test]
fn bench_responder_mpx_get_values_is_its_limits_and_mpxs_conns_1() {
    let bench = BenchMux::start(Some((64, Some(4))));
    let want = [
        ("FCGI_MAX_CONNS", "4"),
        ("FCGI_MAX_REQS", "64"),
        ("FCGI_MPXS_CONNS", "1"),
    ];
    assert_eq!(get_values(&bench.addr), (vec![pairs(&want)], true));
    // Without --max-conns, FCGI_MAX_CONNS is not answered.
    let bench = BenchMux::start(Some((8, None)));
    let want = [("FCGI_MAX_REQS", "8"), ("FCGI_MPXS_CONNS", "1")];
    assert_eq!(get_values(&bench.addr), (vec![pairs(&want)], true));
}

/// Without `--mpx` the engine is the plain one: MPXS_CONNS=0, as before.
#[test]
fn bench_responder_without_mpx_still_says_no_multiplexing() {
    let bench = BenchMux::start(None);
    let want = [
        ("FCGI_MAX_CONNS", "100"),
        ("FCGI_MAX_REQS", "100"),
        ("FCGI_MPXS_CONNS", "0"),
    ];
    assert_eq!(get_values(&bench.addr), (vec![pairs(&want)], true));
}

#[test]
fn bench_responder_mpx_serves_interleaved_requests_on_one_connection() {
    let bench = BenchMux::start(Some((64, None)));
    check_interleaving(&bench.addr, &bench_target, &|_| "Hello, world!".to_owned());
    // A 1 MiB body and a 13-byte one, begun after it, share the connection.
    let mut conn = MuxConn::connect(&bench.addr);
    conn.request(1, &mux_params("GET", "/x?1048576"), b"");
    conn.request(2, &mux_params("POST", "/x"), b"a body to discard");
    let small = conn.wait_end(2);
    assert_eq!(small.body(), b"Hello, world!");
    let big = conn.wait_end(1);
    assert_eq!(big.header("Content-Length").as_deref(), Some("1048576"));
    assert!(big.body().len() == 1 << 20 && big.body().iter().all(|b| *b == b'x'));
    let stdout_of_1 = |a: &&support::mux_client::Arrival| {
        a.request_id == 1 && a.record_type == RecordType::Stdout
    };
    eprintln!(
        "{} STDOUT records of id 1; the END of 2 at {:?} of {}",
        conn.arrivals.iter().filter(stdout_of_1).count(),
        conn.position_of_end(2),
        conn.arrivals.len()
    );
    assert!(
        bench
            .mux
            .peak_streams
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 2
    );
    assert_eq!(
        bench
            .stats
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

/// An abort during STDIN is answered at once; an abort of a running request ends it at
/// the handler's next write, once, without its output; the connection stays usable.
#[test]
fn bench_responder_mpx_aborts_end_each_request_once() {
    let bench = BenchMux::start(Some((64, None)));
    let mut conn = abort_during_stdin(&bench.addr, &bench_target, "Hello, world!");
    assert_eq!(conn.end_count(1), 1, "{:?}", conn.arrivals);
    assert!(conn.ended(1)[0].stdout.is_empty());
    abort_after_stdin(&mut conn, &bench_target, "Hello, world!");
    assert_eq!(conn.end_count(3), 1, "{:?}", conn.arrivals);
    let three = &conn.ended(3)[0];
    assert!(three.stdout.is_empty(), "{}", three.text());
    assert_eq!(three.end.protocol_status, ProtocolStatus::RequestComplete);
    conn.request(5, &mux_params("GET", "/x"), b"");
    assert_eq!(conn.wait_end(5).body(), b"Hello, world!");
    assert_eq!(
        bench.mux.aborts.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

// ---- many streams at once ----

/// 64 requests of `target` on one connection, all sent before any is answered; every
/// answer contains its tag. 1.5 s each, so they all overlap however loaded the machine is.
fn sixty_four_at_once(addr: &Addr, target: &dyn Fn(u32, &str) -> String) {
    let mut conn = MuxConn::connect(addr);
    for id in 1..=64u16 {
        conn.request(
            id,
            &mux_params("GET", &target(1500, &format!("t{id}"))),
            b"",
        );
    }
    for id in 1..=64u16 {
        let answer = conn.wait_end(id);
        assert!(
            answer.text().contains(&format!("tag=t{id} ")),
            "{id}: {}",
            answer.text()
        );
    }
}

#[test]
fn go_runs_64_slow_requests_at_once_on_one_connection() {
    let Some(go) = GoFcgi::start_or_skip() else {
        return;
    };
    sixty_four_at_once(go.addr(), &slow);
    let counters = go.wait_for(SETTLE, |c| c.inflight == 0);
    assert_eq!(
        (counters.accepted, counters.peak, counters.completed),
        (1, 64, 64),
        "{counters:?}"
    );
    // The peak can be reset for the next phase of a test.
    assert_eq!(go.reset_peak().peak, 64);
    assert_eq!(go.counters().peak, 0);
}

/// Many handlers writing at once on one connection: the channel writer keeps
/// tokio-fastcgi from ever seeing its output lock held (it would panic).
#[test]
fn tokio_fastcgi_runs_64_requests_at_once_on_one_connection() {
    let mux = TokioMux::start(1, 64);
    sixty_four_at_once(&mux.addr(), &slow);
    let mut conn = MuxConn::connect(&mux.addr());
    for id in 1..=32u16 {
        conn.request(
            id,
            &mux_params("GET", &format!("/big?bytes={}", 70_000 + usize::from(id))),
            b"",
        );
    }
    for id in 1..=32u16 {
        assert_eq!(
            conn.wait_end(id).body(),
            stream_pattern(70_000 + usize::from(id))
        );
    }
    let counters = mux.wait_for(SETTLE, |c| c.completed == 96);
    assert_eq!(
        (counters.accepted, counters.peak, counters.completed),
        (2, 64, 96),
        "{counters:?}"
    );
}

#[test]
fn flup_multiplexed_runs_64_slow_requests_at_once_on_one_connection() {
    let _serial = one_at_a_time();
    let Some(flup) = flup_mux() else { return };
    sixty_four_at_once(flup.addr(), &slow);
}

/// The tap between `FcgiService` (`Multiplex::Off`: one request per connection) and Go: answers
/// pass unchanged, and a pooled connection idling longer than the raw client's timeouts
/// is not cut.
#[test]
fn the_tap_works_under_the_service() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    let Some(go) = GoFcgi::start_or_skip() else {
        return;
    };
    let tap = Tap::start(go.addr());
    support::runtime().block_on(async {
        let svc = tower_fastcgi::FcgiService::builder()
            .backend(tap.fcgi_backend())
            .multiplex(tower_fastcgi::Multiplex::Off)
            .max_connections(4)
            .build();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let svc = svc.clone();
                tokio::spawn(async move {
                    let req = http::Request::get(format!("/slow?ms=100&tag=s{i}"))
                        .header("host", "localhost")
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .expect("a request");
                    let Ok(res) = svc.oneshot(req).await;
                    let body = res.into_body().collect().await.expect("a body").to_bytes();
                    (i, String::from_utf8_lossy(&body).into_owned())
                })
            })
            .collect();
        for task in tasks {
            let (i, body) = task.await.expect("a request task");
            assert!(body.contains(&format!("tag=s{i} ")), "{body}");
        }
    });
    let stats = tap.stats();
    assert_eq!(stats.begins(), 8, "{stats:#?}");
    assert_eq!(stats.ends(), 8);
    assert!(stats.connections.len() <= 4, "{stats:#?}");
    assert_eq!(stats.max_open(), 1, "not multiplexed");
    assert!(stats.aborts().is_empty());
}
