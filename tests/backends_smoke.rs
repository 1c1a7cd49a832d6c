//! Smoke tests of the interop test infrastructure: every real backend starts, serves the
//! fixtures through the raw FastCGI client, and is gone after Drop. Without the backends
//! installed these tests skip loudly (or fail with `FCGI_INTEROP=require`).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::{Conn, Kind, Options, Params, Program, json, sha256_hex, stream_pattern};

/// Generous for a loaded CI machine; they take well under a second here.
const STARTUP_LIMIT: Duration = Duration::from_secs(5);

/// Starts `kind` and checks the fixtures every interop test relies on.
fn smoke(kind: Kind) {
    let Some(mut backend) = support::backend_or_skip(kind) else {
        return;
    };
    eprintln!(
        "{kind}: started in {:?} on {}\n  {}",
        backend.startup_time(),
        backend.addr(),
        backend.command_line()
    );
    assert!(
        backend.startup_time() < STARTUP_LIMIT,
        "{kind} took {:?} to start",
        backend.startup_time()
    );
    let context = |what: &str, response: &support::Response| {
        format!(
            "{kind}: {what}\n---- stdout ----\n{}\n---- stderr ----\n{}\n{}",
            response.text(),
            response.stderr_text(),
            backend.log_report()
        )
    };

    // GET env: the CGI variables arrive.
    let response = backend.get("env?a=1&b=two");
    assert_eq!(
        response.status(),
        200,
        "{}",
        context("env status", &response)
    );
    assert_eq!(
        response.end.app_status,
        0,
        "{}",
        context("env app status", &response)
    );
    let env = response.env();
    let expected_backend = match kind.program() {
        Program::PhpFpm | Program::PhpCgi => "php",
        Program::Flup => "flup",
        Program::Fcgiwrap => "cgi",
    };
    assert_eq!(env.backend, expected_backend);
    assert_eq!(env.var("REQUEST_METHOD"), "GET");
    assert_eq!(env.var("QUERY_STRING"), "a=1&b=two");
    assert_eq!(env.var("SERVER_PROTOCOL"), "HTTP/1.1");
    assert_eq!(env.var("HTTP_HOST"), "localhost");
    assert_eq!(env.input_length, 0);
    assert_eq!(env.input_sha256, sha256_hex(b""));
    if kind.uses_script_filename() {
        assert_eq!(env.var("SCRIPT_NAME"), backend.target("env"));
    } else {
        assert_eq!(env.var("PATH_INFO"), "/env");
    }

    // POST env: the body arrives whole (several STDIN records).
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let response = backend.post("env", &body);
    let env = response.env();
    assert_eq!(env.var("REQUEST_METHOD"), "POST");
    assert_eq!(env.var("CONTENT_LENGTH"), body.len().to_string());
    assert!(
        env.read_body(&body),
        "{}",
        context("env did not read the body", &response)
    );

    // echo: the body comes back.
    let body = stream_pattern(300_000);
    let response = backend.post("echo", &body);
    assert_eq!(
        response.header("Content-Type").as_deref(),
        Some("application/octet-stream"),
        "{}",
        context("echo head", &response)
    );
    assert!(
        response.body() == body.as_slice(),
        "{}",
        context("echo body differs", &response)
    );

    // stream: N bytes of the pattern.
    let response = backend.get("stream?bytes=100000");
    assert_eq!(
        response.body(),
        stream_pattern(100_000).as_slice(),
        "{kind}: stream body"
    );

    // status, cookies, redirect.
    let response = backend.get("status?code=418");
    assert_eq!(response.status(), 418, "{}", context("status", &response));
    let response = backend.get("cookies");
    let cookies = response.header_all("Set-Cookie");
    assert_eq!(cookies.len(), 3, "{}", context("cookies", &response));
    assert!(cookies[0].starts_with("a=1"), "{cookies:?}");
    let response = backend.get("redirect?to=/elsewhere");
    assert_eq!(response.header("Location").as_deref(), Some("/elsewhere"));

    // stderr: FCGI_STDERR or the backend's log, depending on the backend.
    let token = format!("smoke-{}", kind.name().replace([' ', '(', ')'], ""));
    let response = backend.get(&format!("stderr?msg={token}"));
    assert!(
        response.body().starts_with(b"OK"),
        "{}",
        context("stderr body", &response)
    );
    match kind.program() {
        Program::PhpFpm | Program::PhpCgi => {
            // error_log() travels as FCGI_STDERR, php://stderr lands in the log.
            assert!(
                response
                    .stderr_text()
                    .contains(&format!("error_log: {token}"))
            );
            assert!(
                backend.wait_for_log(&format!("php://stderr: {token}"), Duration::from_secs(5)),
                "{}",
                context("php://stderr not in the log", &response)
            );
        }
        Program::Flup => {
            assert!(
                response
                    .stderr_text()
                    .contains(&format!("wsgi.errors: {token}"))
            );
            assert!(backend.wait_for_log(&format!("sys.stderr: {token}"), Duration::from_secs(5)));
        }
        Program::Fcgiwrap => {
            // Started with -f by default: the script's stderr is FCGI_STDERR.
            assert!(
                response
                    .stderr_text()
                    .contains(&format!("stderr.cgi: {token}")),
                "{}",
                context("stderr.cgi", &response)
            );
        }
    }

    let stopping = Instant::now();
    backend.stop();
    eprintln!("{kind}: stopped in {:?}", stopping.elapsed());
}

#[test]
fn php_fpm_tcp() {
    smoke(Kind::PhpFpmTcp);
}

#[test]
fn php_fpm_unix() {
    smoke(Kind::PhpFpmUnix);
}

#[test]
fn php_cgi_tcp() {
    smoke(Kind::PhpCgiTcp);
}

#[test]
fn php_cgi_unix() {
    smoke(Kind::PhpCgiUnix);
}

#[test]
fn flup_tcp() {
    smoke(Kind::FlupTcp);
}

#[test]
fn flup_unix() {
    smoke(Kind::FlupUnix);
}

#[test]
fn fcgiwrap_tcp() {
    smoke(Kind::FcgiwrapTcp);
}

#[test]
fn fcgiwrap_unix() {
    smoke(Kind::FcgiwrapUnix);
}

/// Process ids whose process group is `group`.
fn group_members(group: u32) -> BTreeSet<u32> {
    let mut members = BTreeSet::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return members;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(group) {
            members.insert(pid);
        }
    }
    members
}

fn wait_until_gone(group: u32) -> BTreeSet<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members = group_members(group);
        if members.is_empty() || Instant::now() >= deadline {
            return members;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn drop_stops_the_whole_process_group_even_on_panic() {
    let Some(backend) =
        support::backend_or_skip_with(Kind::PhpFpmUnix, Options::default().workers(3))
    else {
        return;
    };
    let group = backend.pid().expect("a running backend has a pid");
    // The master listens before it forks its workers; on a loaded machine a worker may
    // not exist yet when the socket first accepts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut members = group_members(group);
    while members.len() < 4 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        members = group_members(group);
    }
    assert!(
        members.len() >= 4,
        "php-fpm master and 3 workers: {members:?}"
    );
    let socket = match backend.addr() {
        support::Addr::Unix(path) => path.clone(),
        other => panic!("unexpected address {other}"),
    };
    let dir = backend.dir().to_path_buf();

    // A test that panics while holding the backend still stops it.
    let outcome = thread::spawn(move || {
        let _backend = backend;
        panic!("deliberate panic while a backend runs");
    })
    .join();
    assert!(outcome.is_err());
    let left = wait_until_gone(group);
    assert!(left.is_empty(), "processes left after Drop: {left:?}");
    assert!(
        !socket.exists() && !dir.exists(),
        "the temporary directory is removed"
    );
}

#[test]
fn fcgiwrap_scripts_in_flight_are_killed_on_drop() {
    let Some(backend) = support::backend_or_skip(Kind::FcgiwrapUnix) else {
        return;
    };
    let group = backend.pid().expect("a running backend has a pid");
    let addr = backend.addr().clone();
    let params = backend.params("GET", &backend.target("sleep?ms=30000"));
    // A request whose CGI script sleeps; the client gives up when the backend goes away.
    let client = thread::spawn(move || support::raw_client::request(&addr, &params, b""));
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    drop(backend);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "Drop took {:?}",
        started.elapsed()
    );
    let left = wait_until_gone(group);
    assert!(left.is_empty(), "processes left after Drop: {left:?}");
    // fcgiwrap notices its script died and answers 502 itself; or the connection drops.
    if let Ok(response) = client.join().expect("client thread") {
        assert_eq!(response.status(), 502, "{}", response.text());
    }
}

#[test]
fn keep_alive_connection_serves_several_requests() {
    let Some(backend) = support::backend_or_skip(Kind::PhpFpmTcp) else {
        return;
    };
    let mut conn = Conn::connect(backend.addr()).expect("connect to php-fpm");
    for i in 0..3 {
        let params = backend.params("GET", &backend.target(&format!("status?code={}", 201 + i)));
        let response = conn
            .request(&params, b"")
            .expect("request on a kept connection");
        assert_eq!(response.status(), 201 + i);
    }
    assert!(!conn.is_broken());
}

#[test]
fn php_cgi_announces_its_children_in_get_values() {
    let Some(backend) =
        support::backend_or_skip_with(Kind::PhpCgiTcp, Options::default().workers(3))
    else {
        return;
    };
    let mut conn = Conn::connect(backend.addr()).expect("connect to php-cgi");
    let values = conn
        .get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        .expect("GET_VALUES");
    assert!(
        values.contains(&("FCGI_MAX_CONNS".to_owned(), "3".to_owned())),
        "{values:?}"
    );
}

#[test]
fn php_settings_and_worker_counts_are_applied() {
    let options = Options::default()
        .workers(2)
        .max_requests(50)
        .ini("memory_limit", "77M");
    let Some(backend) = support::backend_or_skip_with(Kind::PhpFpmTcp, options) else {
        return;
    };
    let script = "<?php echo ini_get('memory_limit'), ' ', ini_get('post_max_size');";
    backend.write_script("ini.php", script);
    let response = backend.get("ini");
    assert_eq!(response.body(), b"77M 2G");
    let conf = fs::read_to_string(backend.dir().join("php-fpm.conf")).expect("php-fpm.conf");
    assert!(conf.contains("pm.max_children = 2") && conf.contains("pm.max_requests = 50"));
}

#[test]
fn php_cgi_keeps_the_clean_environment() {
    let Some(backend) = support::backend_or_skip(Kind::PhpCgiTcp) else {
        return;
    };
    let env = backend.get("env").env();
    // php-cgi copies its process environment into $_SERVER: only the clean one is there.
    assert_eq!(
        env.var("PATH"),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert!(env.get("CARGO").is_none() && env.get("RUST_TEST_THREADS").is_none());
}

#[test]
fn params_split_script_and_path_info() {
    let Some(backend) = support::backend_or_skip(Kind::PhpFpmUnix) else {
        return;
    };
    let params: Params = backend.params("GET", "/env.php/extra/path?x=1");
    assert_eq!(params.get_str("SCRIPT_NAME"), Some("/env.php"));
    assert_eq!(params.get_str("PATH_INFO"), Some("/extra/path"));
    let root = backend.document_root().display().to_string();
    assert_eq!(
        params.get_str("SCRIPT_FILENAME"),
        Some(format!("{root}/env.php").as_str())
    );
    let env = backend
        .request("GET", "/env.php/extra/path?x=1", b"")
        .expect("request")
        .env();
    assert_eq!(env.var("PATH_INFO"), "/extra/path");
    assert_eq!(env.var("SCRIPT_FILENAME"), format!("{root}/env.php"));
}

/// Runs one test of this binary in a child process with the backends hidden.
fn run_hidden(test: &str, interop: Option<&str>) -> (bool, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        // Without --nocapture: the skip banner must be visible under cargo test's default
        // output capture, where a passing test's eprintln! is swallowed.
        .args(["--exact", test, "--test-threads=1"])
        .env("FCGI_TEST_PATH", "/nonexistent-fcgi-test-path");
    match interop {
        Some(value) => command.env("FCGI_INTEROP", value),
        None => command.env_remove("FCGI_INTEROP"),
    };
    let output = command.output().expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn missing_backends_skip_loudly_or_fail_when_required() {
    if std::env::var_os("FCGI_TEST_PATH").is_some() {
        return; // already the child of this test
    }
    let (passed, output) = run_hidden("flup_unix", None);
    assert!(
        passed,
        "a missing backend must not fail by default:\n{output}"
    );
    assert!(
        output.contains("SKIPPED interop test flup_unix"),
        "{output}"
    );
    assert!(output.contains("1 passed"), "{output}");

    let (passed, output) = run_hidden("php_fpm_tcp", Some("require"));
    assert!(!passed, "FCGI_INTEROP=require must fail:\n{output}");
    assert!(
        output.contains("FCGI_INTEROP=require, but php-fpm (tcp) cannot run"),
        "{output}"
    );
}

#[test]
fn json_parser_reads_nested_values_and_escapes() {
    let value = json::parse(r#" {"a": [1, -2.5e1, true, null], "b": "x\"\u00e9\ud83d\ude00\/"} "#)
        .expect("valid JSON");
    assert_eq!(value.get("b").and_then(json::Json::as_str), Some("x\"é😀/"));
    assert_eq!(
        value.get("a"),
        Some(&json::Json::Array(vec![
            json::Json::Number(1.0),
            json::Json::Number(-25.0),
            json::Json::Bool(true),
            json::Json::Null
        ]))
    );
    assert!(json::parse("{\"a\": 1,}").is_err());
    assert!(json::parse("[1] x").is_err());
}

#[test]
fn env_dump_reads_the_cgi_format() {
    let body = b"input_length=3\ninput_sha256=abc\n\nA=1\0B=x=y\0";
    let dump = support::EnvDump::parse(body).expect("cgi format");
    assert_eq!(dump.backend, "cgi");
    assert_eq!(dump.input_length, 3);
    assert_eq!(dump.var("B"), "x=y");
}

/// The HTTP harness itself: a custom reason phrase reaches `Reply::reason` and the raw
/// status line, keep-alive connections are reused, and `Server::stop` really stops.
#[tokio::test]
async fn http_harness_reads_reason_phrases_and_stops() {
    use axum::{Router, response::IntoResponse, routing::get};
    use support::http::{Server, raw};

    let app = Router::new().route(
        "/custom",
        get(|| async {
            let mut res = (http::StatusCode::from_u16(299).expect("299"), "body").into_response();
            res.extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(b"Custom"));
            res
        }),
    );
    let server = Server::start(app).await;
    let client = server.http();
    for _ in 0..2 {
        let reply = client.get("/custom").await;
        assert_eq!((reply.status.as_u16(), reply.reason()), (299, "Custom"));
        assert_eq!(reply.text(), "body");
    }
    let reply = client.get("/missing").await;
    assert_eq!((reply.status.as_u16(), reply.reason()), (404, "Not Found"));
    let raw_reply = raw(
        server.addr(),
        b"GET /custom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_reply.status_line(), "HTTP/1.1 299 Custom");
    assert_eq!(raw_reply.body(), b"body");

    let addr = server.addr();
    server.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
