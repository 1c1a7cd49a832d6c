//! Hostile client input meets secure defaults. The backend here reports the parameters
//! it received; in document-root mode a request must never reach it with a
//! SCRIPT_FILENAME outside the root or naming a non-script.

mod support;

use std::collections::HashMap;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::fake::*;

async fn params_dump(mut req: AppRequest, mut w: Writer) -> Handled {
    req.drain_stdin().await?;
    let mut vars: Vec<_> = req.params.iter().collect();
    vars.sort();
    let mut out = String::new();
    for (k, v) in vars {
        out.push_str(&format!("{k}={v}\n"));
    }
    w.stdout(b"Content-Type: text/plain\r\n\r\n").await?;
    w.stdout(out.as_bytes()).await?;
    w.end(0).await?;
    Ok((req, w, After::KeepIfAsked))
}

fn parse(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn with_headers(headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::get("/");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req.body(Full::default()).unwrap()
}

async fn env_for(fake: &Fake, req: Request<Full<Bytes>>) -> HashMap<String, String> {
    let res = send(&fake.builder().build(), req).await;
    assert_eq!(res.status(), StatusCode::OK);
    parse(&body(res).await.unwrap())
}

#[tokio::test]
async fn proxy_header_never_becomes_http_proxy() {
    let fake = fake(params_dump).await;
    let env = env_for(
        &fake,
        with_headers(&[("proxy", "http://evil.example:3128")]),
    )
    .await;
    assert!(!env.contains_key("HTTP_PROXY"));
}

#[tokio::test]
async fn underscore_headers_cannot_alias_dash_headers() {
    let fake = fake(params_dump).await;
    let env = env_for(
        &fake,
        with_headers(&[("x-real-ip", "10.0.0.1"), ("x_real_ip", "6.6.6.6")]),
    )
    .await;
    assert_eq!(env["HTTP_X_REAL_IP"], "10.0.0.1");
    let env = env_for(&fake, with_headers(&[("x_real_ip", "6.6.6.6")])).await;
    assert!(!env.contains_key("HTTP_X_REAL_IP"));
}

#[tokio::test]
async fn hop_by_hop_and_connection_listed_headers_are_not_forwarded() {
    let fake = fake(params_dump).await;
    let env = env_for(
        &fake,
        with_headers(&[
            ("connection", "x-internal-token"),
            ("x-internal-token", "secret"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ]),
    )
    .await;
    for name in [
        "HTTP_CONNECTION",
        "HTTP_X_INTERNAL_TOKEN",
        "HTTP_KEEP_ALIVE",
        "HTTP_TE",
        "HTTP_UPGRADE",
        "HTTP_PROXY_CONNECTION",
        "HTTP_PROXY_AUTHORIZATION",
    ] {
        assert!(!env.contains_key(name), "{name} forwarded");
    }
}

#[tokio::test]
async fn authorization_forwarding_is_a_switch() {
    let fake = fake(params_dump).await;
    let req = || with_headers(&[("authorization", "Bearer abc")]);
    let env = env_for(&fake, req()).await;
    assert_eq!(env["HTTP_AUTHORIZATION"], "Bearer abc");
    let res = send(&fake.builder().pass_authorization(false).build(), req()).await;
    let env = parse(&body(res).await.unwrap());
    assert!(!env.contains_key("HTTP_AUTHORIZATION"));
}

#[tokio::test]
async fn request_data_cannot_set_parameter_names() {
    let fake = fake(params_dump).await;
    let env = env_for(
        &fake,
        with_headers(&[
            ("php-value", "auto_prepend_file=php://input"),
            ("php_admin_value", "allow_url_include=On"),
            ("script-filename", "/etc/passwd"),
        ]),
    )
    .await;
    for name in ["PHP_VALUE", "PHP_ADMIN_VALUE", "SCRIPT_FILENAME"] {
        assert!(!env.contains_key(name), "{name} set by the client");
    }
    // Only ever under the HTTP_ prefix.
    assert_eq!(env["HTTP_PHP_VALUE"], "auto_prepend_file=php://input");
    // A query string or path is never parsed into parameters either.
    let res = send(
        &fake.builder().build(),
        get("/x?PHP_VALUE=auto_prepend_file%3Dphp://input"),
    )
    .await;
    let env = parse(&body(res).await.unwrap());
    assert!(!env.contains_key("PHP_VALUE"));
}

#[tokio::test]
async fn oversized_request_headers_are_431() {
    let fake = fake(params_dump).await;
    let big = "c".repeat(70_000);
    let res = send(
        &fake.builder().build(),
        with_headers(&[("cookie", big.as_str())]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let mut req = Request::get("/");
    for i in 0..100 {
        req = req.header(format!("x-h{i}"), "v".repeat(1000));
    }
    let res = send(
        &fake.builder().build(),
        req.body(Full::<Bytes>::default()).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(fake.connections(), 0, "never sent to the backend");
}

// ---------------------------------------------------------------- document root

struct Site {
    root: tempfile::TempDir,
    outside: tempfile::TempDir,
    fake: Fake,
}

async fn site() -> Site {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("uploads")).unwrap();
    std::fs::create_dir_all(r.join("blog")).unwrap();
    std::fs::write(r.join("index.php"), "<?php").unwrap();
    std::fs::write(r.join("blog/index.php"), "<?php").unwrap();
    std::fs::write(r.join("uploads/avatar.jpg"), "<?php system($_GET['c']);").unwrap();
    std::fs::write(r.join("uploads/shell.PHP"), "<?php").unwrap();
    std::fs::write(outside.path().join("secret.php"), "<?php").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.php"), r.join("escape.php")).unwrap();
    std::os::unix::fs::symlink(outside.path(), r.join("outdir")).unwrap();
    Site {
        root,
        outside,
        fake: fake(params_dump).await,
    }
}

impl Site {
    fn service(&self) -> tower_fastcgi::FcgiService {
        self.fake.builder().document_root(self.root.path()).build()
    }

    async fn status(&self, raw_path: &str) -> StatusCode {
        let req = Request::get(raw_path)
            .body(Full::<Bytes>::default())
            .unwrap();
        send(&self.service(), req).await.status()
    }

    async fn env(&self, raw_path: &str) -> HashMap<String, String> {
        let req = Request::get(raw_path)
            .body(Full::<Bytes>::default())
            .unwrap();
        let res = send(&self.service(), req).await;
        assert_eq!(res.status(), StatusCode::OK, "{raw_path}");
        parse(&body(res).await.unwrap())
    }
}

#[tokio::test]
async fn traversal_never_escapes_the_document_root() {
    let site = site().await;
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/blog/%2E%2E/%2E%2E/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/blog%2findex.php",
        "/..\\..\\etc\\passwd",
        "/%5c..%5cindex.php",
    ] {
        let status = site.status(path).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
    }
    // Inside the root, `..` resolves safely.
    let env = site.env("/blog/../index.php").await;
    assert_eq!(
        env["SCRIPT_FILENAME"],
        site.root.path().join("index.php").display().to_string()
    );
    assert_eq!(
        site.fake.connections(),
        1,
        "only the safe request reached the backend"
    );
}

#[tokio::test]
async fn nul_and_line_breaks_in_the_path_are_400() {
    let site = site().await;
    for path in [
        "/index.php%00.jpg",
        "/uploads/avatar.jpg%00.php",
        "/index.php%0a",
        "/index.php/%0aPHP_VALUE",
        "/index.php%0d%0aX:%20y",
    ] {
        assert_eq!(site.status(path).await, StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn cve_2019_11043_newline_in_path_info_is_refused() {
    // The exploit's shape: /index.php/PHP%0Ais_the_shittiest_lang.php?...
    let site = site().await;
    assert_eq!(
        site.status("/index.php/PHP%0Ais_the_shittiest_lang.php?QQQ")
            .await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn split_path_never_runs_an_upload() {
    let site = site().await;
    for path in [
        "/uploads/avatar.jpg/x.php",
        "/uploads/avatar.jpg/",
        "/uploads/avatar.jpg",
        "/uploads/shell.PHP",
        "/uploads/shell.PHP/x.php",
        // Unicode case folding must not turn İ or K-sign spellings into a match.
        "/uploads/avatar.jpg/x.%C4%B0php",
        "/index.%E2%84%AAphp",
    ] {
        assert_eq!(site.status(path).await, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(site.fake.connections(), 0);
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_refused() {
    let site = site().await;
    assert_eq!(site.status("/escape.php").await, StatusCode::NOT_FOUND);
    assert_eq!(
        site.status("/outdir/secret.php").await,
        StatusCode::NOT_FOUND
    );
    assert!(site.outside.path().join("secret.php").exists());
    let lenient = site
        .fake
        .builder()
        .document_root(site.root.path())
        .follow_symlinks_outside_root(true)
        .build();
    let res = send(&lenient, get("/escape.php")).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn split_path_info_and_index_files() {
    let site = site().await;
    let env = site.env("/index.php/2024/hello%20world?x=1").await;
    assert_eq!(env["SCRIPT_NAME"], "/index.php");
    assert_eq!(env["PATH_INFO"], "/2024/hello world");
    assert_eq!(
        env["PATH_TRANSLATED"],
        format!("{}/2024/hello world", site.root.path().display())
    );
    assert_eq!(env["REQUEST_URI"], "/index.php/2024/hello%20world?x=1");
    let env = site.env("/blog/").await;
    assert_eq!(env["SCRIPT_NAME"], "/blog/index.php");
    let res = send(&site.service(), get("/blog?page=2")).await;
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()["location"], "/blog/?page=2");
}
