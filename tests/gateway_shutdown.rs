//! The gateway's graceful shutdown, on the real binary in front of php-fpm: at SIGTERM it
//! stops accepting, lets the request in flight finish (200, whole body), and exits 0
//! within the grace period; a request that outlives the grace is cut and the gateway
//! still exits 0 once the grace is over.

mod gateway_support;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gateway_support::{Gateway, php_mount};
use support::{Kind, Options};

/// Sends one HTTP/1.1 request on a fresh connection and reads until the server closes.
fn request(addr: std::net::SocketAddr, target: &str) -> std::thread::JoinHandle<String> {
    let head = format!("GET {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    let mut tcp = TcpStream::connect(addr).expect("the gateway accepts");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp.write_all(head.as_bytes()).unwrap();
    std::thread::spawn(move || {
        let mut reply = Vec::new();
        // A cut connection is an error or an early EOF: both leave a short reply.
        let _ = tcp.read_to_end(&mut reply);
        String::from_utf8_lossy(&reply).into_owned()
    })
}

fn php_fpm() -> Option<support::RunningBackend> {
    support::backend_or_skip_with(
        Kind::PhpFpmTcp,
        Options {
            workers: 2,
            ..Options::default()
        },
    )
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let _serial = support::one_at_a_time();
    let Some(php) = php_fpm() else { return };
    let mount = php_mount(&php);
    let mut gateway = Gateway::start(&["--grace", "20", "--php", &mount]);
    let addr = gateway.addr();

    let in_flight = request(addr, "/sleep.php?ms=1500");
    // Long enough for the request to reach php-fpm, well short of its 1.5 s.
    std::thread::sleep(Duration::from_millis(400));
    let signalled = Instant::now();
    gateway.terminate();

    // The listener is closed at once: a new connection is refused, not queued.
    std::thread::sleep(Duration::from_millis(300));
    let refused = TcpStream::connect(addr);
    assert!(
        refused.is_err(),
        "a new connection after SIGTERM must be refused; log:\n{}",
        gateway.log()
    );

    let reply = in_flight.join().unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "the request in flight must complete; got {reply:?}; log:\n{}",
        gateway.log()
    );
    // The whole body, and the chunked encoding's last chunk: nothing cut.
    assert!(
        reply.contains("slept 1500\n") && reply.ends_with("\r\n0\r\n\r\n"),
        "the whole body: {reply:?}"
    );

    let status = gateway
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("the gateway did not exit; log:\n{}", gateway.log()));
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        gateway.log()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "exits once drained, well within the 20 s grace"
    );
}

#[test]
fn idle_keep_alive_connections_do_not_hold_up_the_shutdown() {
    let _serial = support::one_at_a_time();
    let Some(php) = php_fpm() else { return };
    let mount = php_mount(&php);
    let mut gateway = Gateway::start(&["--grace", "20", "--php", &mount]);

    // A keep-alive connection that has finished its request and sits idle.
    let mut idle = TcpStream::connect(gateway.addr()).unwrap();
    idle.write_all(b"GET /sleep.php?ms=0 HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let signalled = Instant::now();
    gateway.terminate();
    let status = gateway
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "an idle connection held the gateway; log:\n{}",
                gateway.log()
            )
        });
    assert!(status.success(), "exit status {status}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_request_outliving_the_grace_is_cut_and_the_gateway_exits_0() {
    let _serial = support::one_at_a_time();
    let Some(php) = php_fpm() else { return };
    let mount = php_mount(&php);
    let mut gateway = Gateway::start(&["--grace", "0.5", "--php", &mount]);

    let in_flight = request(gateway.addr(), "/sleep.php?ms=4000");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    gateway.terminate();

    let status = gateway
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the gateway overstayed its grace; log:\n{}", gateway.log()));
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        gateway.log()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "the 0.5 s grace bounds the shutdown, not the 4 s request"
    );
    let reply = in_flight.join().unwrap();
    assert!(
        !reply.contains("slept 4000"),
        "the request was cut, not completed: {reply:?}"
    );
    assert!(
        gateway.log().contains("grace period over"),
        "the cut is logged: {}",
        gateway.log()
    );
}
