//! `FcgiFilter` against real Filter-role applications (flup, tokio-fastcgi; see
//! `tests/support/authorizers/filters.rs`): a 50 MiB file goes through each as FCGI_DATA
//! and comes back transformed, with the gateway's memory bounded.
//!
//! The memory test is the only one here that moves large data, so the binary's peak RSS
//! belongs to it; the tokio-fastcgi filter runs in a child process (this binary, re-run).

#[path = "../examples/support/mount.rs"]
mod mount;
mod support;

use std::io::Write as _;
use std::path::Path;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use support::authorizers::filters::{
    Filter, FilterFlavor, serve_tokio_fastcgi_child, start_filter_or_skip,
};
use tower::ServiceExt;
use tower_fastcgi::{FcgiFilter, FcgiService};

const MIB: usize = 1 << 20;
const CHILD_TEST: &str = "tokio_fastcgi_filter_child";

/// Not a test: the body of the tokio-fastcgi filter's child process (does nothing in an
/// ordinary run).
#[test]
fn tokio_fastcgi_filter_child() {
    serve_tokio_fastcgi_child();
}

/// Peak resident set size so far, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Mixed-case ASCII, different in every 64 KiB block, written without holding it whole.
fn write_pattern(path: &Path, len: usize) -> (Sha256, Sha256) {
    let mut file = std::fs::File::create(path).unwrap();
    let (mut plain, mut upper) = (Sha256::new(), Sha256::new());
    let mut block = vec![0u8; 64 * 1024];
    let mut written = 0;
    let mut round = 0u32;
    while written < len {
        for (i, b) in block.iter_mut().enumerate() {
            let x = (i as u32).wrapping_mul(31).wrapping_add(round * 7) % 52;
            *b = if x < 26 {
                b'a' + x as u8
            } else {
                b'A' + (x - 26) as u8
            };
        }
        let n = block.len().min(len - written);
        let piece = &block[..n];
        file.write_all(piece).unwrap();
        plain.update(piece);
        upper.update(piece.to_ascii_uppercase());
        written += n;
        round += 1;
    }
    (plain, upper)
}

fn filter_for(app: &Filter, root: &Path) -> FcgiFilter {
    FcgiFilter::new(
        FcgiService::builder()
            .backend(app.backend())
            .document_root(root)
            .build(),
    )
    .unwrap()
}

fn get(target: &str) -> Request<http_body_util::Empty<Bytes>> {
    Request::builder()
        .uri(target)
        .body(http_body_util::Empty::new())
        .unwrap()
}

#[test]
fn a_50_mib_file_is_transformed_by_each_filter_with_bounded_memory() {
    let _serial = support::one_at_a_time();
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("big.txt");
    let len = 50 * MIB;
    let (_, upper) = write_pattern(&file, len);
    let expected = hex(upper.finalize().as_slice());
    let mtime = std::fs::metadata(&file)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    support::runtime().block_on(async {
        for flavor in [FilterFlavor::Flup, FilterFlavor::TokioFastcgi] {
            let Some(app) = start_filter_or_skip(flavor, CHILD_TEST) else {
                continue;
            };
            let before = peak_rss_kib();
            let res = filter_for(&app, root.path())
                .oneshot(get("/big.txt"))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{flavor:?}\n{}", app.log());
            let header = |name: &str| res.headers()[name].to_str().unwrap().to_owned();
            assert_eq!(header("x-data-length"), len.to_string(), "{flavor:?}");
            assert_eq!(header("x-data-last-mod"), mtime.to_string(), "{flavor:?}");
            assert_eq!(header("x-script-name"), "/big.txt", "{flavor:?}");
            assert_eq!(
                header("x-script-filename"),
                file.to_str().unwrap(),
                "{flavor:?}"
            );
            // Hashed frame by frame: the test holds no more of the body than the gateway.
            let mut body = res.into_body();
            let mut hash = Sha256::new();
            let mut received = 0;
            while let Some(frame) = body.frame().await {
                let frame = frame.unwrap_or_else(|e| panic!("{flavor:?}: {e}\n{}", app.log()));
                if let Ok(data) = frame.into_data() {
                    received += data.len();
                    hash.update(&data);
                }
            }
            assert_eq!(received, len, "{flavor:?}");
            assert_eq!(hex(hash.finalize().as_slice()), expected, "{flavor:?}");
            let grown = peak_rss_kib().saturating_sub(before);
            assert!(
                grown < 16 * 1024,
                "{flavor:?}: the peak RSS grew by {grown} KiB for a 50 MiB file"
            );
        }
    });
}

#[test]
fn the_request_body_goes_first_and_scripts_dotfiles_directories_and_missing_files_are_not_filtered()
{
    let _serial = support::one_at_a_time();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("small.txt"), "abc def").unwrap();
    std::fs::write(root.path().join("secret.php"), "<?php $password = 1;").unwrap();
    std::fs::create_dir(root.path().join("dir")).unwrap();
    std::fs::create_dir(root.path().join(".git")).unwrap();
    std::fs::write(root.path().join(".git/config"), "[remote]").unwrap();
    support::runtime().block_on(async {
        for flavor in [FilterFlavor::Flup, FilterFlavor::TokioFastcgi] {
            let Some(app) = start_filter_or_skip(flavor, CHILD_TEST) else {
                continue;
            };
            let filter = filter_for(&app, root.path());
            let post = Request::builder()
                .method(Method::POST)
                .uri("/small.txt?x=1")
                .header("content-length", "5")
                .body(http_body_util::Full::new(Bytes::from_static(b"hello")))
                .unwrap();
            let res = filter.clone().oneshot(post).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{flavor:?}\n{}", app.log());
            assert_eq!(res.headers()["x-stdin"], "hello", "{flavor:?}");
            assert_eq!(res.headers()["x-data-length"], "7", "{flavor:?}");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "ABC DEF", "{flavor:?}");

            let status = |target: &'static str| {
                let filter = filter.clone();
                async move { filter.oneshot(get(target)).await.unwrap() }
            };
            assert_eq!(status("/secret.php").await.status(), StatusCode::NOT_FOUND);
            assert_eq!(status("/.git/config").await.status(), StatusCode::NOT_FOUND);
            assert_eq!(status("/missing.txt").await.status(), StatusCode::NOT_FOUND);
            assert_eq!(
                status("/../etc/passwd").await.status(),
                StatusCode::BAD_REQUEST
            );
            let dir = status("/dir").await;
            assert_eq!(dir.status(), StatusCode::PERMANENT_REDIRECT);
            assert_eq!(dir.headers()["location"], "/dir/");
        }
    });
}

#[test]
fn the_gateways_filter_option_serves_a_directory_through_the_filter() {
    let _serial = support::one_at_a_time();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("note.txt"), "hello, filter").unwrap();
    support::runtime().block_on(async {
        let Some(app) = start_filter_or_skip(FilterFlavor::TokioFastcgi, CHILD_TEST) else {
            return;
        };
        let spec = format!(
            "/docs=unix:{},root={},conns=2",
            app.socket.display(),
            root.path().display()
        );
        let filter = mount::parse_mount(mount::Kind::Filter, &spec).unwrap();
        let router = filter.mount(axum::Router::new()).unwrap();
        let server = support::http::Server::start(router).await;
        let reply = server.http().get("/docs/note.txt").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", app.log());
        assert_eq!(reply.text(), "HELLO, FILTER");
        assert_eq!(reply.header("x-script-name"), "/docs/note.txt");
        let err = mount::parse_mount(mount::Kind::Filter, "/d=unix:/x.sock,script=/a").unwrap_err();
        assert!(
            err.contains("unknown option \"script\" for --filter"),
            "{err}"
        );
    });
}

#[test]
fn a_filter_needs_a_document_root() {
    let err = FcgiFilter::new(FcgiService::tcp("127.0.0.1:9")).unwrap_err();
    assert!(err.to_string().contains("document_root"), "{err}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
