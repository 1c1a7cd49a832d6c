//! `PhpSite` against real php-fpm, over real HTTP: axum serves the site on 127.0.0.1 and
//! a hyper client talks to it, so every check sees what a browser would (the status line,
//! the headers after axum and hyper, the bytes on the wire) and what PHP itself saw.
//!
//! Skips loudly without php-fpm (fails with `FCGI_INTEROP=require`).

mod support;

use std::path::{Path, PathBuf};

use axum::Router;
use bytes::Bytes;
use http::{Method, StatusCode};
use support::http::{Chunked, Multipart, Reply, Server, Session, full};
use support::json::{self, Json};
use support::{Kind, Options};
use tower_fastcgi::{FcgiBody, PhpSite, PhpSiteBuilder};

/// What a script saw: selected `$_SERVER` entries, `$_GET`, `$_POST`, `$_FILES` (name,
/// size, SHA-256 of the content) and php://input, as JSON.
const DUMP_PHP: &str = r#"<?php
$server = [];
foreach (['REQUEST_METHOD', 'REQUEST_URI', 'QUERY_STRING', 'SCRIPT_NAME', 'SCRIPT_FILENAME',
          'PATH_INFO', 'PATH_TRANSLATED', 'PHP_SELF', 'DOCUMENT_ROOT', 'CONTENT_TYPE',
          'CONTENT_LENGTH', 'REDIRECT_URL', 'HTTP_HOST', 'REMOTE_ADDR'] as $name) {
    if (isset($_SERVER[$name])) {
        $server[$name] = (string) $_SERVER[$name];
    }
}
$files = [];
foreach ($_FILES as $field => $file) {
    $files[$field] = [
        'name' => $file['name'],
        'size' => (string) $file['size'],
        'sha256' => $file['error'] ? 'error ' . $file['error'] : hash_file('sha256', $file['tmp_name']),
    ];
}
header('Content-Type: application/json');
echo json_encode(['script' => __FILE__, 'server' => $server, 'get' => $_GET, 'post' => $_POST,
                  'files' => $files, 'input' => file_get_contents('php://input')],
                 JSON_UNESCAPED_SLASHES);
"#;

/// An "image" that is really PHP: if it ever runs, it leaves a marker file behind.
const EVIL_UPLOAD: &str = r#"<?php
file_put_contents(dirname(__DIR__) . '/PWNED', 'x.jpg ran');
echo 'PWNED';
"#;

/// A private configuration file that must never run or be served.
const PRIVATE_CONF: &str = r#"<?php
file_put_contents(dirname(__DIR__) . '/PWNED', 'conf/local.php ran');
$password = 'hunter2';
echo 'PWNED';
"#;

/// An RFC 3875 local redirect: `Location` with no `Status` (PHP only leaves the Status out
/// when the response code is 200, hence the explicit code).
const GO_PHP: &str = r#"<?php
header('Location: ' . ($_GET['to'] ?? '/other.php'), true, 200);
echo "this body is never seen\n";
"#;

/// Hands a file to the gateway: `?accel=URI` or `?sendfile=PATH`.
const DOWNLOAD_PHP: &str = r#"<?php
header('Content-Type: text/csv');
header('Content-Disposition: attachment; filename="report.csv"');
header('Set-Cookie: downloaded=1');
if (isset($_GET['accel'])) {
    header('X-Accel-Redirect: ' . $_GET['accel']);
} else {
    header('X-Sendfile: ' . $_GET['sendfile']);
}
echo "the script's own body is discarded\n";
"#;

/// `?code=N` answers with that status and a page of PHP's own.
const STATUS_PHP: &str = r#"<?php
http_response_code((int) ($_GET['code'] ?? 200));
header('Content-Type: text/html');
echo "<p>php's own page</p>\n";
"#;

const FATAL_PHP: &str = r#"<?php
throw new RuntimeException('boom');
"#;

const SECRET: &str = "hunter2";

/// The contents of `/assets/app.css`: 4000 bytes, byte i is `b'a' + i % 26`.
fn css() -> Vec<u8> {
    support::stream_pattern(4000)
}

/// A php-fpm backend with the test site in its document root, and the X-Sendfile
/// directory (outside the root).
struct Php {
    backend: support::RunningBackend,
    protected: tempfile::TempDir,
}

impl Php {
    fn start() -> Option<Php> {
        let backend =
            support::backend_or_skip_with(Kind::PhpFpmUnix, Options::default().workers(2))?;
        for script in [
            "index.php",
            "dir/index.php",
            "script.php",
            "other.php",
            "form.php",
        ] {
            backend.write_script(script, DUMP_PHP);
        }
        backend.write_script("go.php", GO_PHP);
        backend.write_script("download.php", DOWNLOAD_PHP);
        backend.write_script("status.php", STATUS_PHP);
        backend.write_script("fatal.php", FATAL_PHP);
        backend.write_script("uploads/x.jpg", EVIL_UPLOAD);
        backend.write_script("conf/local.php", PRIVATE_CONF);
        backend.write_script("data/pages/start.txt", SECRET);
        backend.write_script(".env", &format!("PASSWORD={SECRET}\n"));
        backend.write_script(".git/config", &format!("[remote] token = {SECRET}\n"));
        backend.write_script("assets/app.css", &String::from_utf8(css()).expect("ASCII"));
        let root = backend.document_root().to_path_buf();

        let protected = tempfile::tempdir().expect("temp dir");
        std::fs::write(protected.path().join("report.csv"), "0123456789abcdef").expect("write");
        std::os::unix::fs::symlink(root.join(".env"), protected.path().join("escape.csv"))
            .expect("symlink");
        Some(Php { backend, protected })
    }

    fn root(&self) -> &Path {
        self.backend.document_root()
    }

    fn file(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// The site every test starts from: the nginx-style setup of the crate docs.
    fn site(&self) -> PhpSiteBuilder {
        let backend = self.backend.fcgi_backend();
        PhpSite::builder()
            .root(self.root())
            .fastcgi(move |b| b.backend(backend).max_connections(2))
            .deny(["/conf", "/data"])
            .x_sendfile("/protected", self.protected.path())
    }

    /// Serves `site` at `/` beside a native route, as an application would.
    async fn serve(&self, site: PhpSiteBuilder) -> Server {
        self.serve_site(site.build()).await
    }

    async fn serve_site(&self, site: PhpSite) -> Server {
        let app = Router::new()
            .route("/api/health", axum::routing::get(|| async { "ok" }))
            .fallback_service(site);
        Server::start(app).await
    }

    /// FastCGI requests the site sent so far (every one opens or reuses a connection).
    fn php_requests(site: &PhpSite) -> u64 {
        let stats = site.fastcgi().pool_stats();
        stats.connections_opened + stats.connections_reused
    }

    /// Fails if a script that must never run left its marker.
    fn assert_nothing_ran(&self) {
        let marker = self.file("PWNED");
        assert!(
            !marker.exists(),
            "a file that must never run did: {}",
            std::fs::read_to_string(&marker).unwrap_or_default()
        );
    }

    fn context(&self, what: &str, reply: &Reply) -> String {
        format!(
            "{what}: {} {:?}\n{}\n{}",
            reply.status,
            reply.headers,
            reply.text(),
            self.backend.log_report()
        )
    }

    /// The dump of a script's JSON answer; panics with the context if it is not one.
    fn dump(&self, what: &str, reply: &Reply) -> Json {
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            self.context(what, reply)
        );
        json::parse(&reply.text()).unwrap_or_else(|e| panic!("{e}\n{}", self.context(what, reply)))
    }
}

/// `dump["server"]["SCRIPT_NAME"]` as `lookup(&dump, "server.SCRIPT_NAME")`.
fn lookup<'a>(dump: &'a Json, path: &str) -> Option<&'a str> {
    let mut value = dump;
    for key in path.split('.') {
        value = value.get(key)?;
    }
    value.as_str()
}

#[track_caller]
fn expect(dump: &Json, path: &str, expected: &str) {
    assert_eq!(lookup(dump, path), Some(expected), "{path} in {dump:?}");
}

#[tokio::test]
async fn static_files_have_ranges_and_validators_and_never_reach_php() {
    let Some(php) = Php::start() else { return };
    let site = php.site().build();
    let server = php.serve_site(site.clone()).await;
    let mut client = server.client();

    let full_reply = client.get("/assets/app.css").await;
    assert_eq!(full_reply.status, StatusCode::OK);
    assert_eq!(full_reply.header("content-type"), "text/css");
    assert_eq!(full_reply.header("accept-ranges"), "bytes");
    assert_eq!(full_reply.header("content-length"), "4000");
    assert_eq!(&full_reply.body[..], &css()[..]);
    let etag = full_reply.header("etag").to_owned();
    let last_modified = full_reply.header("last-modified").to_owned();
    assert!(!last_modified.is_empty(), "Last-Modified is set");
    assert!(etag.starts_with('"'), "a strong ETag: {etag:?}");

    // Ranges: one slice, a suffix, an open end, and one past the end.
    let reply = client
        .get_with("/assets/app.css", &[("range", "bytes=100-199")])
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.header("content-range"), "bytes 100-199/4000");
    assert_eq!(&reply.body[..], &css()[100..200]);
    let reply = client
        .get_with("/assets/app.css", &[("range", "bytes=-10")])
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], &css()[3990..]);
    let reply = client
        .get_with("/assets/app.css", &[("range", "bytes=3998-")])
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], &css()[3998..]);
    let reply = client
        .get_with("/assets/app.css", &[("range", "bytes=5000-6000")])
        .await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE);

    // Validators, as ServeFile handles them.
    let reply = client
        .get_with("/assets/app.css", &[("if-none-match", &etag)])
        .await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    assert!(reply.body.is_empty());
    let reply = client
        .get_with(
            "/assets/app.css",
            &[("if-none-match", "\"something-else\"")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = client
        .get_with("/assets/app.css", &[("if-modified-since", &last_modified)])
        .await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    let reply = client
        .get_with(
            "/assets/app.css",
            &[("if-unmodified-since", "Thu, 01 Jan 1998 00:00:00 GMT")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
    let reply = client
        .get_with("/assets/app.css", &[("if-match", "\"something-else\"")])
        .await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);

    // HEAD has the headers and no body; other methods are refused.
    let req = Session::request(Method::HEAD, "/assets/app.css")
        .body(full(""))
        .unwrap();
    let reply = client.send(req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), "4000");
    assert!(reply.body.is_empty());
    let reply = client.post_form("/assets/app.css", &[("a", "1")]).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);

    // The native route beside the site still answers.
    assert_eq!(client.get("/api/health").await.text(), "ok");
    assert_eq!(
        Php::php_requests(&site),
        0,
        "static files never reach php-fpm"
    );
}

#[tokio::test]
async fn directories_run_their_index_and_get_a_trailing_slash() {
    let Some(php) = Php::start() else { return };
    let server = php.serve(php.site()).await;
    let mut client = server.client();

    let dump = php.dump("/dir/", &client.get("/dir/?x=1").await);
    expect(&dump, "server.SCRIPT_NAME", "/dir/index.php");
    expect(
        &dump,
        "server.SCRIPT_FILENAME",
        &php.file("dir/index.php").display().to_string(),
    );
    expect(&dump, "server.REQUEST_URI", "/dir/?x=1");
    expect(&dump, "get.x", "1");

    let reply = client.get("/dir").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(reply.header("location"), "/dir/");
    let reply = client.get("/dir?x=1&y=a%20b").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(reply.header("location"), "/dir/?x=1&y=a%20b");

    // The root directory runs /index.php.
    let dump = php.dump("/", &client.get("/").await);
    expect(&dump, "server.SCRIPT_NAME", "/index.php");
}

#[tokio::test]
async fn pretty_urls_go_to_the_front_controller_with_the_original_uri() {
    let Some(php) = Php::start() else { return };
    let server = php.serve(php.site()).await;
    let mut client = server.client();

    let dump = php.dump("pretty URL", &client.get("/blog/post-1?page=2").await);
    expect(&dump, "server.REQUEST_URI", "/blog/post-1?page=2");
    expect(&dump, "server.QUERY_STRING", "page=2");
    expect(&dump, "server.SCRIPT_NAME", "/index.php");
    expect(
        &dump,
        "server.SCRIPT_FILENAME",
        &php.file("index.php").display().to_string(),
    );
    expect(&dump, "server.PHP_SELF", "/index.php");
    expect(&dump, "get.page", "2");
    assert_eq!(lookup(&dump, "server.PATH_INFO"), None, "{dump:?}");

    // Encoded characters reach PHP as sent in REQUEST_URI and decoded in $_GET.
    let dump = php.dump(
        "encoded",
        &client.get("/caf%C3%A9/a%20b?q=x%26y&tag=%C3%A9").await,
    );
    expect(
        &dump,
        "server.REQUEST_URI",
        "/caf%C3%A9/a%20b?q=x%26y&tag=%C3%A9",
    );
    expect(&dump, "get.q", "x&y");
    expect(&dump, "get.tag", "é");

    // Without a front controller, a path matching nothing is a 404.
    let server = php.serve(php.site().front_controller(None)).await;
    let reply = server.client().get("/blog/post-1?page=2").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn path_info_follows_an_existing_script() {
    let Some(php) = Php::start() else { return };
    let server = php.serve(php.site()).await;
    let mut client = server.client();

    let dump = php.dump("path info", &client.get("/script.php/extra/path?x=1").await);
    expect(&dump, "server.SCRIPT_NAME", "/script.php");
    expect(
        &dump,
        "server.SCRIPT_FILENAME",
        &php.file("script.php").display().to_string(),
    );
    expect(&dump, "server.PATH_INFO", "/extra/path");
    expect(&dump, "server.PHP_SELF", "/script.php/extra/path");
    expect(&dump, "server.REQUEST_URI", "/script.php/extra/path?x=1");
    expect(&dump, "server.QUERY_STRING", "x=1");
    expect(
        &dump,
        "script",
        &php.file("script.php").display().to_string(),
    );

    // A trailing slash is path info too; a script in a subdirectory splits the same way.
    let dump = php.dump("slash", &client.get("/script.php/").await);
    expect(&dump, "server.PATH_INFO", "/");
    let dump = php.dump("nested", &client.get("/dir/index.php/x").await);
    expect(&dump, "server.SCRIPT_NAME", "/dir/index.php");
    expect(&dump, "server.PATH_INFO", "/x");
}

#[tokio::test]
async fn an_upload_named_in_a_split_path_never_runs() {
    let Some(php) = Php::start() else { return };
    let server = php.serve(php.site()).await;
    let mut client = server.client();

    // nginx's classic `location ~ \.php$` mistake would run x.jpg here. It names a
    // script after a file that is not one: a 404, front controller or not.
    let reply = client.get("/uploads/x.jpg/a.php").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    for target in [
        "/uploads/x.jpg/a.php",
        "/uploads/x.jpg/.php",
        "/uploads/x.jpg%2fa.php",
        "/uploads/x.jpg%00.php",
        "/uploads/x.jpg%0a.php",
        "/uploads/x.jpg/%2e%2e/x.jpg/a.php",
    ] {
        let reply = client.get(target).await;
        assert!(!reply.text().contains("PWNED"), "{target}");
    }
    let server_without_front = php.serve(php.site().front_controller(None)).await;
    let mut strict = server_without_front.client();
    for target in ["/uploads/x.jpg/a.php", "/uploads/x.jpg/index.php/x"] {
        let reply = strict.get(target).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{target}");
    }

    // The upload itself is a static file: its bytes, never its output.
    let reply = client.get("/uploads/x.jpg").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "image/jpeg");
    assert_eq!(reply.text(), EVIL_UPLOAD);
    php.assert_nothing_ran();
}

#[tokio::test]
async fn dotfiles_and_denied_directories_are_404_however_spelled() {
    let Some(php) = Php::start() else { return };
    let site = php.site().build();
    let server = php.serve_site(site.clone()).await;
    let mut client = server.client();

    for target in [
        "/.env",
        "/%2eenv",
        "/%2Eenv",
        "/.git/config",
        "/%2egit/config",
        "/dir/../.env",
        "/dir/%2e%2e/.env",
        "/assets/../.git/config",
        "/conf/local.php",
        "/conf/local.php/x",
        "/conf/",
        "/conf",
        "/%63onf/local.php",
        "/%63%6f%6e%66/local.php",
        "/CONF/../conf/local.php",
        "/x/../conf/local.php",
        "/dir/%2e%2e/conf/local.php",
        "//conf//local.php",
        "/./conf/local.php",
        "/data/pages/start.txt",
        "/%64ata/pages/start.txt",
        "/data/../data/pages/start.txt",
        "/assets/../../data/pages/start.txt",
    ] {
        let reply = client.get(target).await;
        assert!(
            reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::BAD_REQUEST,
            "{}",
            php.context(target, &reply)
        );
        assert!(!reply.text().contains(SECRET), "{target}");
        assert!(!reply.text().contains("PWNED"), "{target}");
    }
    // POST is refused the same way, body or not.
    let reply = client.post_form("/conf/local.php", &[("a", "1")]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    php.assert_nothing_ran();
    assert_eq!(
        Php::php_requests(&site),
        0,
        "nothing private reached php-fpm"
    );

    // Lookalikes are ordinary pretty URLs.
    for target in ["/conference", "/database/x", "/env"] {
        let dump = php.dump(target, &client.get(target).await);
        expect(&dump, "server.SCRIPT_NAME", "/index.php");
    }
}

#[tokio::test]
async fn a_local_redirect_is_served_internally() {
    let Some(php) = Php::start() else { return };
    let server = php.serve(php.site()).await;
    let mut client = server.client();

    let reply = client.get("/go.php?to=/other.php%3Fvia%3Dgo").await;
    assert!(
        !reply.text().contains("never seen"),
        "{}",
        php.context("go", &reply)
    );
    assert_eq!(
        reply.header("location"),
        "",
        "the client never sees the Location"
    );
    let dump = php.dump("local redirect", &reply);
    expect(
        &dump,
        "script",
        &php.file("other.php").display().to_string(),
    );
    expect(&dump, "server.SCRIPT_NAME", "/other.php");
    expect(&dump, "server.REQUEST_METHOD", "GET");
    expect(&dump, "get.via", "go");
    expect(&dump, "server.REDIRECT_URL", "/go.php");

    // A POST that redirects becomes a GET without the body.
    let reply = client
        .post_form("/go.php?to=/other.php", &[("field", "value")])
        .await;
    let dump = php.dump("POST redirect", &reply);
    expect(&dump, "server.REQUEST_METHOD", "GET");
    expect(&dump, "input", "");
    assert_eq!(lookup(&dump, "server.CONTENT_LENGTH").unwrap_or(""), "");

    // With a Status, or to another host, the client gets the redirect.
    let reply = client.get("/go.php?to=https://example.com/").await;
    assert_eq!(
        reply.status,
        StatusCode::FOUND,
        "{}",
        php.context("absolute", &reply)
    );
    assert_eq!(reply.header("location"), "https://example.com/");
}

#[tokio::test]
async fn a_local_redirect_obeys_the_site_rules() {
    let Some(php) = Php::start() else { return };
    let server = php.serve(php.site()).await;
    let mut client = server.client();

    // To a static file: served like any request for it would be.
    let reply = client.get("/go.php?to=/assets/app.css").await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        php.context("static", &reply)
    );
    assert_eq!(&reply.body[..], &css()[..]);
    // To a pretty URL: the front controller.
    let dump = php.dump("pretty", &client.get("/go.php?to=/blog/x%3Fp%3D1").await);
    expect(&dump, "server.SCRIPT_NAME", "/index.php");
    expect(&dump, "server.REQUEST_URI", "/blog/x?p=1");
    // To a private path: refused like a request for it.
    for to in ["/conf/local.php", "/%2eenv", "/data/pages/start.txt"] {
        let target = format!("/go.php?to={}", to.replace('%', "%25"));
        let reply = client.get(&target).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{}",
            php.context(to, &reply)
        );
        assert!(!reply.text().contains(SECRET), "{to}");
    }
    php.assert_nothing_ran();

    // A redirect loop ends after a few hops with a 502.
    php.backend.write_script(
        "loop.php",
        "<?php header('Location: /loop.php', true, 200);\n",
    );
    let reply = client.get("/loop.php").await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        php.context("loop", &reply)
    );
    // The pool is fine afterwards.
    let dump = php.dump("after the loop", &client.get("/other.php").await);
    expect(&dump, "server.SCRIPT_NAME", "/other.php");
}

#[tokio::test]
async fn x_accel_redirect_and_x_sendfile_serve_allowed_files_only() {
    let Some(php) = Php::start() else { return };
    let server = php.serve(php.site()).await;
    let mut client = server.client();

    let reply = client
        .get_with(
            "/download.php?accel=/protected/report.csv",
            &[("range", "bytes=2-5")],
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PARTIAL_CONTENT,
        "{}",
        php.context("accel", &reply)
    );
    assert_eq!(reply.text(), "2345");
    assert_eq!(reply.header("content-range"), "bytes 2-5/16");
    // PHP adds its default_charset.
    assert_eq!(reply.header("content-type"), "text/csv;charset=UTF-8");
    assert_eq!(
        reply.header("content-disposition"),
        "attachment; filename=\"report.csv\""
    );
    assert_eq!(reply.header("set-cookie"), "downloaded=1");
    assert!(!reply.headers.contains_key("x-accel-redirect"));

    let inside = php.protected.path().join("report.csv");
    let target = format!("/download.php?sendfile={}", inside.display());
    let reply = client.get(&target).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        php.context("sendfile", &reply)
    );
    assert_eq!(reply.text(), "0123456789abcdef");
    assert!(!reply.headers.contains_key("x-sendfile"));
    let etag = reply.header("etag").to_owned();
    let reply = client
        .get_with(&target, &[("if-none-match", &etag), ("range", "bytes=0-0")])
        .await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);

    let protected = php.protected.path().display().to_string();
    for refused in [
        "accel=/protected/../../../../etc/passwd".to_owned(),
        "accel=/protected/escape.csv".to_owned(),
        "accel=/elsewhere/report.csv".to_owned(),
        "sendfile=/etc/passwd".to_owned(),
        format!("sendfile={protected}/../../../../etc/passwd"),
        format!("sendfile={protected}/escape.csv"),
        format!("sendfile={}", php.file(".env").display()),
        "sendfile=report.csv".to_owned(),
    ] {
        let reply = client.get(&format!("/download.php?{refused}")).await;
        assert!(
            reply.status.is_server_error() || reply.status == StatusCode::NOT_FOUND,
            "{}",
            php.context(&refused, &reply)
        );
        assert!(!reply.text().contains("root:"), "{refused}");
        assert!(!reply.text().contains(SECRET), "{refused}");
        assert!(!reply.text().contains("discarded"), "{refused}");
    }
}

#[tokio::test]
async fn intercepted_errors_use_the_apps_own_page() {
    let Some(php) = Php::start() else { return };
    let site = php
        .site()
        .on_error(|failure| {
            let status = failure.status();
            let mut res = http::Response::new(FcgiBody::full(format!(
                "<h1>our {} page for {}</h1>",
                status.as_u16(),
                failure.request.uri.path()
            )));
            *res.status_mut() = status;
            Some(res)
        })
        .intercept_errors(true);
    let server = php.serve(site).await;
    let mut client = server.client();

    let reply = client.get("/status.php?code=404").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.text(), "<h1>our 404 page for /status.php</h1>");
    let reply = client.get("/status.php?code=503").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.text(), "<h1>our 503 page for /status.php</h1>");
    // An uncaught exception: php-fpm answers 500, the app's page replaces it.
    let reply = client.get("/fatal.php").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.text(), "<h1>our 500 page for /fatal.php</h1>");

    // Everything below 400 is untouched.
    for code in ["200", "201", "302"] {
        let reply = client.get(&format!("/status.php?code={code}")).await;
        assert_eq!(reply.status.as_str(), code);
        assert_eq!(reply.text(), "<p>php's own page</p>\n");
    }
    // And the connection pool survived the discarded bodies.
    let reply = client.get("/status.php").await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn post_forms_and_uploads_reach_php() {
    let Some(php) = Php::start() else { return };
    let server = php.serve(php.site()).await;
    let mut client = server.client();

    let fields = [
        ("name", "Ada Lovelace"),
        ("tags[]", "a&b"),
        ("tags[]", "c=d"),
        ("note", "é ✓ 100%"),
    ];
    let reply = client.post_form("/form.php?from=query", &fields).await;
    let dump = php.dump("form", &reply);
    expect(&dump, "server.REQUEST_METHOD", "POST");
    expect(
        &dump,
        "server.CONTENT_TYPE",
        "application/x-www-form-urlencoded",
    );
    expect(&dump, "post.name", "Ada Lovelace");
    expect(&dump, "post.note", "é ✓ 100%");
    expect(&dump, "get.from", "query");
    let tags = dump.get("post").and_then(|p| p.get("tags"));
    assert_eq!(
        tags,
        Some(&Json::Array(vec![
            Json::String("a&b".into()),
            Json::String("c=d".into())
        ]))
    );
    let body_len = support::http::form_urlencoded(&fields).len().to_string();
    expect(&dump, "server.CONTENT_LENGTH", &body_len);

    // multipart/form-data with a file.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let form =
        Multipart::new()
            .field("title", "holiday")
            .file("photo", "beach.png", "image/png", &data);
    let dump = php.dump(
        "multipart",
        &client.post_multipart("/form.php", &form).await,
    );
    expect(&dump, "post.title", "holiday");
    expect(&dump, "files.photo.name", "beach.png");
    expect(&dump, "files.photo.size", &data.len().to_string());
    expect(&dump, "files.photo.sha256", &support::sha256_hex(&data));

    // A chunked body (no Content-Length from the client) is spooled so PHP still gets
    // an exact CONTENT_LENGTH.
    let req = Session::request(Method::POST, "/form.php")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::BodyExt::boxed(Chunked::new([
            Bytes::from_static(b"first=1&"),
            Bytes::from_static(b"second=2"),
        ])))
        .unwrap();
    let dump = php.dump("chunked", &client.send(req).await);
    expect(&dump, "server.CONTENT_LENGTH", "16");
    expect(&dump, "post.first", "1");
    expect(&dump, "post.second", "2");

    // A POST to a pretty URL reaches the front controller with its body.
    let dump = php.dump(
        "front POST",
        &client.post_form("/blog/comment", &[("text", "hi")]).await,
    );
    expect(&dump, "server.SCRIPT_NAME", "/index.php");
    expect(&dump, "post.text", "hi");
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_never_followed() {
    let Some(php) = Php::start() else { return };
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join("secret.txt"), SECRET).unwrap();
    std::fs::write(
        outside.path().join("run.php"),
        "<?php echo 'PWNED outside';",
    )
    .unwrap();
    let root = php.root();
    let link = |target: &Path, name: &str| {
        let at = root.join(name);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, at).unwrap();
    };
    link(&outside.path().join("secret.txt"), "file-link.txt");
    link(&outside.path().join("run.php"), "script-link.php");
    link(outside.path(), "dir-link");
    link(&outside.path().join("secret.txt"), "idx/index.html");
    link(&outside.path().join("run.php"), "idx-php/index.php");
    // A symlink that stays inside the root is fine.
    link(&root.join("assets/app.css"), "inside-link.css");

    let site = php
        .site()
        .index_files(["index.php", "index.html"])
        .front_controller(None);
    let server = php.serve(site).await;
    let mut client = server.client();
    for target in [
        "/file-link.txt",
        "/script-link.php",
        "/dir-link/secret.txt",
        "/dir-link/run.php",
        "/idx/",
        "/idx-php/",
    ] {
        let reply = client.get(target).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{}",
            php.context(target, &reply)
        );
        assert!(!reply.text().contains(SECRET), "{target}");
        assert!(!reply.text().contains("PWNED"), "{target}");
    }
    let reply = client.get("/inside-link.css").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], &css()[..]);
}

#[tokio::test]
async fn a_missing_script_is_404_without_running_php_unless_asked() {
    let Some(php) = Php::start() else { return };
    let site = php.site().build();
    let server = php.serve_site(site.clone()).await;
    let mut client = server.client();
    // nginx's `try_files $fastcgi_script_name =404`: probes cost no PHP worker.
    for target in [
        "/missing.php",
        "/wp-login.php?action=x",
        "/old/xmlrpc.php/x",
        "/assets/app.css/x.php",
        "/uploads/x.jpg/a.php",
    ] {
        let reply = client.get(target).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{}",
            php.context(target, &reply)
        );
    }
    assert_eq!(Php::php_requests(&site), 0, "PHP never ran");

    // Caddy's behaviour on request: the front controller gets the original URI.
    let caddy = php
        .serve(php.site().front_controller_for_missing_scripts(true))
        .await;
    let mut client = caddy.client();
    let dump = php.dump("missing", &client.get("/missing.php?x=1").await);
    expect(
        &dump,
        "script",
        &php.file("index.php").display().to_string(),
    );
    expect(&dump, "server.REQUEST_URI", "/missing.php?x=1");
    // A script name after a static file stays a 404.
    for target in ["/assets/app.css/x.php", "/uploads/x.jpg/a.php"] {
        let reply = client.get(target).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{target}");
    }
    php.assert_nothing_ran();
}

#[tokio::test]
async fn a_custom_error_page_under_nest_service_sees_the_original_uri() {
    let Some(php) = Php::start() else { return };
    let site = php
        .site()
        .on_error(|failure| {
            let mut res = http::Response::new(FcgiBody::full(format!(
                "our {} page for {}",
                failure.status().as_u16(),
                failure.original_uri()
            )));
            *res.status_mut() = failure.status();
            Some(res)
        })
        .intercept_errors(true)
        .intercept_not_found(true)
        .build();
    let app = Router::new().nest_service("/blog", site);
    let server = Server::start(app).await;
    let mut client = server.client();

    let reply = client.get("/blog/status.php?code=404").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.text(), "our 404 page for /blog/status.php?code=404");
    let reply = client.get("/blog/missing.php").await;
    assert_eq!(reply.text(), "our 404 page for /blog/missing.php");
    // The directory redirect keeps its Location (with the prefix) and its status.
    let reply = client.get("/blog/dir?x=1").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(reply.header("location"), "/blog/dir/?x=1");
    // Successful pages are untouched.
    let dump = php.dump("nested", &client.get("/blog/dir/").await);
    expect(&dump, "server.SCRIPT_NAME", "/blog/dir/index.php");
}
