//! Codec benchmarks for `tower_fastcgi::proto`.
//!
//! * `encode/php_request`: one typical PHP request as the client writes it: BEGIN_REQUEST,
//!   about 40 CGI parameters of realistic sizes through `ParamsEncoder`, a 1 KiB STDIN
//!   body and the PARAMS/STDIN terminators, into a `BytesMut` that is cleared and reused.
//! * `decode/stdout_64k_*`: a 64 KiB response as backends send it: STDOUT records of
//!   65528 bytes (php-fpm writes large output in `0xfff8`-byte records) or of 8 KiB
//!   (flup), padded to eight bytes, the empty STDOUT record and END_REQUEST. Each
//!   iteration copies the wire bytes into a reused read buffer, as a socket read would,
//!   and decodes every record.
//!
//! Throughput is reported in wire bytes per second. A counting global allocator reports,
//! once and outside the timed loops, how many heap allocations one iteration makes.
//!
//! * `cgi/env_browser_post`: the CGI environment (application mode, default settings) for
//!   the same browser POST as an `http::Request`, encoded as PARAMS.
//! * `cgi/head_php`: parsing php-fpm's first STDOUT record (six headers and the start of
//!   the HTML) into a response head.
//!
//! Run with `cargo bench --bench codec` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a quick run).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower_fastcgi::proto::{
    BeginRequest, Decoder, ParamsEncoder, Record, RecordType, Role, encode_stream,
};

#[path = "support/counting.rs"]
mod counting;
#[path = "support/wire.rs"]
mod wire;

/// Average allocations per call of `f` over `runs` calls, after one warm-up call.
fn allocations_per_iteration(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let before = counting::allocations();
    for _ in 0..runs {
        f();
    }
    let after = counting::allocations();
    (after - before) as f64 / runs as f64
}

// ---------------------------------------------------------------------------------------
// (a) Encoding a PHP request
// ---------------------------------------------------------------------------------------

const COOKIE: &str = "PHPSESSID=9f86d081884c7d659a2feaa0c55ad015; \
    XSRF-TOKEN=eyJpdiI6IkpXVk1vN0xQTVR3V2dkZ1E9PSIsInZhbHVlIjoiZ3lQb0tMb3VtZ1ZkSFp4In0%3D; \
    laravel_session=eyJpdiI6Ik9mUTZmN2V1bWx4ZkE9PSIsInZhbHVlIjoiS2dUd2JLeTFwYzZ0In0%3D; \
    _ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; \
    cart_id=5f2b8c1e-0d4a-4c7e-9b1f-3e2a6d8c9f01; locale=en_US; theme=dark";

/// The CGI/1.1 and HTTP_* variables nginx's `fastcgi_params` plus a PHP front controller
/// send for a browser POST, with realistic lengths.
fn php_params() -> Vec<(&'static str, String)> {
    let uri = "/products/category/running-shoes?page=2&sort=price_desc&filter%5Bbrand%5D=acme";
    let v = |s: &str| s.to_owned();
    vec![
        ("SCRIPT_FILENAME", v("/var/www/shop/public/index.php")),
        ("SCRIPT_NAME", v("/index.php")),
        ("DOCUMENT_URI", v("/index.php")),
        ("DOCUMENT_ROOT", v("/var/www/shop/public")),
        ("REQUEST_URI", v(uri)),
        (
            "QUERY_STRING",
            v("page=2&sort=price_desc&filter%5Bbrand%5D=acme"),
        ),
        ("REQUEST_METHOD", v("POST")),
        ("CONTENT_TYPE", v("application/x-www-form-urlencoded")),
        ("CONTENT_LENGTH", v("1024")),
        ("PATH_INFO", v("")),
        ("SERVER_PROTOCOL", v("HTTP/1.1")),
        ("REQUEST_SCHEME", v("https")),
        ("HTTPS", v("on")),
        ("GATEWAY_INTERFACE", v("CGI/1.1")),
        ("SERVER_SOFTWARE", v("tower-fastcgi/0.1.0")),
        ("REMOTE_ADDR", v("203.0.113.42")),
        ("REMOTE_PORT", v("51234")),
        ("SERVER_ADDR", v("10.0.0.5")),
        ("SERVER_PORT", v("443")),
        ("SERVER_NAME", v("shop.example.com")),
        ("REDIRECT_STATUS", v("200")),
        ("HTTP_HOST", v("shop.example.com")),
        (
            "HTTP_USER_AGENT",
            v(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/124.0.0.0 Safari/537.36",
            ),
        ),
        (
            "HTTP_ACCEPT",
            v(
                "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
               image/webp,image/apng,*/*;q=0.8",
            ),
        ),
        ("HTTP_ACCEPT_LANGUAGE", v("en-US,en;q=0.9,de;q=0.8")),
        ("HTTP_ACCEPT_ENCODING", v("gzip, deflate, br, zstd")),
        ("HTTP_COOKIE", v(COOKIE)),
        (
            "HTTP_REFERER",
            v("https://shop.example.com/products/category/running-shoes?page=1"),
        ),
        ("HTTP_ORIGIN", v("https://shop.example.com")),
        ("HTTP_CONTENT_TYPE", v("application/x-www-form-urlencoded")),
        ("HTTP_CONTENT_LENGTH", v("1024")),
        ("HTTP_CACHE_CONTROL", v("max-age=0")),
        ("HTTP_UPGRADE_INSECURE_REQUESTS", v("1")),
        (
            "HTTP_SEC_CH_UA",
            v("\"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\""),
        ),
        ("HTTP_SEC_CH_UA_MOBILE", v("?0")),
        ("HTTP_SEC_CH_UA_PLATFORM", v("\"Linux\"")),
        ("HTTP_SEC_FETCH_SITE", v("same-origin")),
        ("HTTP_SEC_FETCH_MODE", v("navigate")),
        ("HTTP_SEC_FETCH_DEST", v("document")),
        ("HTTP_X_FORWARDED_FOR", v("198.51.100.7")),
        (
            "HTTP_X_REQUEST_ID",
            v("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
        ),
    ]
}

fn encode_php_request(dst: &mut BytesMut, params: &[(&str, String)], body: &[u8]) {
    dst.clear();
    Record::BeginRequest {
        request_id: 1,
        body: BeginRequest {
            role: Role::Responder,
            keep_conn: true,
        },
    }
    .encode(dst);
    let mut encoder = ParamsEncoder::new(dst, 1);
    for (name, value) in params {
        encoder
            .push(name.as_bytes(), value.as_bytes())
            .expect("realistic params fit");
    }
    encoder.finish();
    encode_stream(dst, RecordType::Stdin, 1, body);
    encode_stream(dst, RecordType::Stdin, 1, b"");
}

fn bench_encode(c: &mut Criterion) {
    let params = php_params();
    let body: Vec<u8> = b"item=3047936&quantity=100&"
        .iter()
        .copied()
        .cycle()
        .take(1024)
        .collect();
    let mut dst = BytesMut::with_capacity(4096);
    encode_php_request(&mut dst, &params, &body);
    let wire_len = dst.len();
    let param_bytes: usize = params.iter().map(|(n, v)| n.len() + v.len()).sum();
    let cookie_len = params
        .iter()
        .find(|(n, _)| *n == "HTTP_COOKIE")
        .map_or(0, |(_, v)| v.len());

    let allocs = allocations_per_iteration(10_000, || {
        encode_php_request(&mut dst, &params, &body);
        black_box(&dst);
    });
    println!(
        "encode/php_request: {} params ({param_bytes} bytes of names and values, \
         HTTP_COOKIE {cookie_len} bytes), 1 KiB STDIN, {wire_len} wire bytes; \
         {allocs:.2} allocations per request (reused BytesMut)",
        params.len(),
    );

    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(wire_len as u64));
    group.bench_function("php_request", |b| {
        b.iter(|| {
            encode_php_request(&mut dst, black_box(&params), black_box(&body));
            black_box(dst.len())
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------
// (b) Decoding a 64 KiB STDOUT response
// ---------------------------------------------------------------------------------------

/// A php-fpm style response: headers, then 64 KiB of HTML, in STDOUT records of at most
/// `record_len` content bytes, the empty STDOUT record and END_REQUEST.
fn stdout_response(record_len: usize) -> Vec<u8> {
    let mut content =
        b"X-Powered-By: PHP/8.3.6\r\nContent-type: text/html; charset=UTF-8\r\n\r\n".to_vec();
    let html = b"<li class=\"product\"><a href=\"/p/12345\">Running shoe</a></li>\n";
    content.extend(html.iter().copied().cycle().take(64 * 1024));
    let mut wire = BytesMut::new();
    for chunk in content.chunks(record_len) {
        encode_stream(&mut wire, RecordType::Stdout, 1, chunk);
    }
    wire::end_response(&mut wire, 1);
    wire.to_vec()
}

/// Copies `wire` into the reused read buffer and decodes every record; returns the number
/// of STDOUT bytes seen.
fn decode_response(buf: &mut BytesMut, wire: &[u8]) -> usize {
    buf.extend_from_slice(wire);
    let mut decoder = Decoder::new();
    let mut stdout = 0;
    while let Some(record) = decoder.decode(buf).expect("valid response") {
        match record {
            Record::Stdout { data, .. } => stdout += black_box(data).len(),
            Record::EndRequest { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    stdout
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, record_len) in [
        ("stdout_64k_php_65528", 65528),
        ("stdout_64k_flup_8k", 8192),
    ] {
        let wire = stdout_response(record_len);
        let mut buf = BytesMut::with_capacity(wire.len());
        let stdout = decode_response(&mut buf, &wire);
        assert!(stdout > 64 * 1024 && buf.is_empty());
        let records = 2 + (stdout).div_ceil(record_len);

        let allocs = allocations_per_iteration(10_000, || {
            black_box(decode_response(&mut buf, &wire));
        });
        println!(
            "decode/{name}: {} wire bytes, {records} records; \
             {allocs:.2} allocations per response (reused read buffer)",
            wire.len(),
        );

        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| decode_response(&mut buf, black_box(&wire)))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------
// (c) The CGI layer: request parts → PARAMS, STDOUT → response head
// ---------------------------------------------------------------------------------------

/// The browser POST of `php_params`, as an `http::Request` the service would receive.
fn browser_request() -> http::request::Parts {
    let mut req = http::Request::builder()
        .method("POST")
        .uri("/products/category/running-shoes?page=2&sort=price_desc&filter%5Bbrand%5D=acme")
        .header("host", "shop.example.com");
    for (name, value) in php_params() {
        let Some(header) = name.strip_prefix("HTTP_") else {
            continue;
        };
        if header == "HOST" {
            continue;
        }
        req = req.header(header.replace('_', "-").to_ascii_lowercase(), value);
    }
    req.body(()).expect("valid request").into_parts().0
}

/// What php-fpm sends first for a session page: the head and the start of the HTML.
const PHP_HEAD: &[u8] = b"X-Powered-By: PHP/8.2.31\r\n\
Set-Cookie: PHPSESSID=9f86d081884c7d659a2feaa0c55ad015; path=/; HttpOnly\r\n\
Expires: Thu, 19 Nov 1981 08:52:00 GMT\r\n\
Cache-Control: no-store, no-cache, must-revalidate\r\n\
Pragma: no-cache\r\n\
Content-type: text/html; charset=UTF-8\r\n\r\n\
<!DOCTYPE html><html><head><title>Running shoes</title></head><body>";

fn bench_cgi(c: &mut Criterion) {
    use tower_fastcgi::bench_hooks::{encode_request_params, parse_response_head};

    let parts = browser_request();
    let mut dst = BytesMut::with_capacity(4096);
    let params_len = encode_request_params(&parts, Some(1024), &mut dst).expect("maps");
    let allocs = allocations_per_iteration(10_000, || {
        dst.clear();
        black_box(encode_request_params(&parts, Some(1024), &mut dst));
    });
    println!(
        "cgi/env_browser_post: {} request headers -> {params_len} bytes of PARAMS; \
         {allocs:.2} allocations per request (reused BytesMut)",
        parts.headers.len()
    );

    let stdout = bytes::Bytes::from_static(PHP_HEAD);
    let (headers, rest) = parse_response_head(stdout.clone()).expect("valid head");
    let head_allocs = allocations_per_iteration(10_000, || {
        black_box(parse_response_head(stdout.clone()));
    });
    println!(
        "cgi/head_php: {} bytes, {headers} headers, {rest} body bytes after the head; \
         {head_allocs:.2} allocations per response",
        PHP_HEAD.len()
    );

    let mut group = c.benchmark_group("cgi");
    group.throughput(Throughput::Bytes(params_len as u64));
    group.bench_function("env_browser_post", |b| {
        b.iter(|| {
            dst.clear();
            encode_request_params(black_box(&parts), Some(1024), &mut dst)
        })
    });
    group.throughput(Throughput::Bytes(PHP_HEAD.len() as u64));
    group.bench_function("head_php", |b| {
        b.iter(|| parse_response_head(black_box(stdout.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench_encode, bench_decode, bench_cgi);
criterion_main!(benches);
