//! `PhpSite` routing, static files, private paths, X-Sendfile and intercepted errors,
//! with the in-repo responder standing in for php-fpm (the interop tests repeat the
//! important cases against real php-fpm).

mod support;

use std::collections::HashMap;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::fake::*;
use tower::ServiceExt;
use tower_fastcgi::{FcgiBody, PhpSite};

/// Echoes SCRIPT_FILENAME and friends; answers per QUERY_STRING for special cases.
async fn php(mut req: AppRequest, mut w: Writer) -> Handled {
    req.drain_stdin().await?;
    let q = req.param("QUERY_STRING").to_owned();
    let head = match q.as_str() {
        "accel" => "X-Accel-Redirect: /protected/report.txt\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=r.csv\r\nSet-Cookie: dl=1".to_owned(),
        "sendfile" => format!("X-Sendfile: {}", req.param("HTTP_X_TARGET")),
        "missing" => "Status: 404 Not Found\r\nContent-Type: text/html".to_owned(),
        _ => "Content-Type: text/plain".to_owned(),
    };
    let mut vars: Vec<_> = req
        .params
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "SCRIPT_FILENAME"
                    | "SCRIPT_NAME"
                    | "PATH_INFO"
                    | "REQUEST_URI"
                    | "QUERY_STRING"
                    | "REQUEST_METHOD"
            )
        })
        .collect();
    vars.sort();
    let mut out = String::new();
    for (k, v) in vars {
        out.push_str(&format!("{k}={v}\n"));
    }
    w.stdout(format!("{head}\r\n\r\n").as_bytes()).await?;
    w.stdout(out.as_bytes()).await?;
    w.end(0).await?;
    Ok((req, w, After::KeepIfAsked))
}

struct Site {
    root: tempfile::TempDir,
    protected: tempfile::TempDir,
    fake: Fake,
}

async fn site() -> Site {
    let root = tempfile::tempdir().unwrap();
    let protected = tempfile::tempdir().unwrap();
    let r = root.path();
    for dir in [
        "uploads",
        "docs",
        "conf",
        ".git",
        ".well-known/acme-challenge",
        "lib",
    ] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
    }
    std::fs::write(r.join("index.php"), "<?php // front controller").unwrap();
    std::fs::write(r.join("docs/index.php"), "<?php").unwrap();
    std::fs::write(r.join("info.php"), "<?php phpinfo();").unwrap();
    std::fs::write(r.join("style.css"), "body { color: red }\n".repeat(100)).unwrap();
    std::fs::write(r.join("uploads/x.jpg"), "<?php system('id');").unwrap();
    std::fs::write(r.join("conf/local.php"), "<?php $password = 'x';").unwrap();
    std::fs::write(r.join(".env"), "SECRET=1").unwrap();
    std::fs::write(r.join(".git/config"), "[core]").unwrap();
    std::fs::write(r.join(".well-known/acme-challenge/token"), "acme").unwrap();
    std::fs::write(r.join("lib/helper.php"), "<?php").unwrap();
    std::fs::write(protected.path().join("report.txt"), "0123456789").unwrap();
    Site {
        root,
        protected,
        fake: fake(php).await,
    }
}

impl Site {
    fn builder(&self) -> tower_fastcgi::PhpSiteBuilder {
        let backend = self.fake.backend.clone();
        PhpSite::builder()
            .root(self.root.path())
            .fastcgi(move |b| b.backend(backend))
            .deny(["/conf", "lib"])
            .x_sendfile("/protected", self.protected.path())
    }

    async fn get(&self, path: &str) -> http::Response<FcgiBody> {
        let req = Request::get(path).body(Full::<Bytes>::default()).unwrap();
        self.builder().build().oneshot(req).await.unwrap()
    }

    async fn env(&self, path: &str) -> HashMap<String, String> {
        let res = self.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        String::from_utf8_lossy(&body(res).await.unwrap())
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn file(&self, rel: &str) -> String {
        self.root.path().join(rel).display().to_string()
    }
}

#[tokio::test]
async fn scripts_run_and_their_source_is_never_served() {
    let site = site().await;
    let env = site.env("/info.php").await;
    assert_eq!(env["SCRIPT_FILENAME"], site.file("info.php"));
    let env = site.env("/info.php/extra").await;
    assert_eq!(env["PATH_INFO"], "/extra");
}

#[tokio::test]
async fn static_files_with_ranges_and_etags() {
    let site = site().await;
    let res = site.get("/style.css").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/css");
    let etag = res.headers().get("etag").cloned();
    let last_modified = res.headers()["last-modified"].clone();
    assert_eq!(body(res).await.unwrap().len(), 2000);
    let _ = etag;

    let req = Request::get("/style.css")
        .header("range", "bytes=0-3")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = site.builder().build().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&body(res).await.unwrap()[..], b"body");

    let req = Request::get("/style.css")
        .header("if-modified-since", last_modified)
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = site.builder().build().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    let req = Request::post("/style.css")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = site.builder().build().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        site.fake.connections(),
        0,
        "static files never reach php-fpm"
    );
}

#[tokio::test]
async fn directory_index_and_trailing_slash_redirect() {
    let site = site().await;
    let env = site.env("/docs/").await;
    assert_eq!(env["SCRIPT_NAME"], "/docs/index.php");
    let res = site.get("/docs?x=1").await;
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()["location"], "/docs/?x=1");
}

#[tokio::test]
async fn front_controller_serves_pretty_urls() {
    let site = site().await;
    let env = site.env("/blog/2024/hello-world?page=2&q=a%20b").await;
    assert_eq!(env["SCRIPT_FILENAME"], site.file("index.php"));
    assert_eq!(env["SCRIPT_NAME"], "/index.php");
    assert_eq!(env["REQUEST_URI"], "/blog/2024/hello-world?page=2&q=a%20b");
    assert_eq!(env["QUERY_STRING"], "page=2&q=a%20b");
    assert!(!env.contains_key("PATH_INFO"));

    let no_front = site.builder().front_controller(None).build();
    let req = Request::get("/blog/x")
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(
        no_front.oneshot(req).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn uploads_are_never_executed() {
    let site = site().await;
    // A script name after a file that is not a script: 404 (even with a front
    // controller, and even when missing scripts go to it); x.jpg never runs.
    for svc in [
        site.builder().build(),
        site.builder()
            .front_controller_for_missing_scripts(true)
            .build(),
    ] {
        let res = svc.oneshot(get("/uploads/x.jpg/a.php")).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(site.fake.connections(), 0);
    // The upload itself is a static file.
    let res = site.get("/uploads/x.jpg").await;
    assert_eq!(&body(res).await.unwrap()[..], b"<?php system('id');");
}

#[tokio::test]
async fn private_paths_are_refused_after_normalisation() {
    let site = site().await;
    for path in [
        "/.env",
        "/.git/config",
        "/%2egit/config",
        "/docs/../.env",
        "/conf/local.php",
        "/conf",
        "/conf/",
        "/%63onf/local.php",
        "/x/../conf/local.php",
        "//conf//local.php",
        "/lib/helper.php",
    ] {
        let res = site.get(path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(
        site.fake.connections(),
        0,
        "nothing private reached php-fpm"
    );
    // Lookalikes are not denied.
    assert_eq!(site.get("/configuration").await.status(), StatusCode::OK);
    let res = site.get("/.well-known/acme-challenge/token").await;
    assert_eq!(&body(res).await.unwrap()[..], b"acme");
}

#[tokio::test]
async fn x_accel_redirect_serves_an_allowed_file_with_the_scripts_headers() {
    let site = site().await;
    let req = Request::get("/info.php?accel")
        .header("range", "bytes=2-5")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = site.builder().build().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()["content-type"], "text/csv");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=r.csv"
    );
    assert_eq!(res.headers()["set-cookie"], "dl=1");
    assert!(!res.headers().contains_key("x-accel-redirect"));
    assert_eq!(&body(res).await.unwrap()[..], b"2345");
}

#[tokio::test]
async fn x_sendfile_outside_the_allowed_directories_is_refused() {
    let site = site().await;
    let svc = site.builder().build();
    let inside = site.protected.path().join("report.txt");
    for (target, ok) in [
        (inside.display().to_string(), true),
        ("/etc/passwd".to_owned(), false),
        (
            format!("{}/../../etc/passwd", site.protected.path().display()),
            false,
        ),
        (site.file(".env"), false),
    ] {
        let req = Request::get("/info.php?sendfile")
            .header("x-target", target.as_str())
            .body(Full::<Bytes>::default())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        if ok {
            assert_eq!(&body(res).await.unwrap()[..], b"0123456789");
        } else {
            assert!(
                res.status().is_server_error() || res.status() == StatusCode::NOT_FOUND,
                "{target}"
            );
            let text = body(res).await.unwrap();
            assert!(
                !String::from_utf8_lossy(&text).contains("root:"),
                "{target}"
            );
        }
    }
    // Without x_sendfile, nothing is served and the internal path never reaches the
    // client: a 500 (the reason is logged), not an empty 200 that looks complete.
    let plain = PhpSite::builder()
        .root(site.root.path())
        .fastcgi({
            let b = site.fake.backend.clone();
            move |f| f.backend(b)
        })
        .build();
    let req = Request::get("/info.php?sendfile")
        .header("x-target", "/etc/passwd")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = plain.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!res.headers().contains_key("x-sendfile"));
    let text = String::from_utf8_lossy(&body(res).await.unwrap()).into_owned();
    assert!(
        !text.contains("root:") && !text.contains("/etc/passwd"),
        "{text}"
    );
}

#[tokio::test]
async fn intercepted_errors_use_the_apps_error_page() {
    let site = site().await;
    let svc = site
        .builder()
        .on_error(|failure| {
            let status = failure.status();
            let mut res = http::Response::new(FcgiBody::full(format!(
                "our own {} page for {}",
                status.as_u16(),
                failure.request.uri.path()
            )));
            *res.status_mut() = status;
            Some(res)
        })
        .intercept_errors(true)
        .build();
    let req = Request::get("/info.php?missing")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        &body(res).await.unwrap()[..],
        b"our own 404 page for /info.php"
    );
    // Successful responses are untouched.
    let req = Request::get("/info.php")
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_missing_script_is_404_without_the_front_controller_unless_asked() {
    let site = site().await;
    // nginx: `try_files $fastcgi_script_name =404`.
    for path in ["/missing.php", "/old/wp-login.php", "/missing.php/extra"] {
        let res = site.get(path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(site.fake.connections(), 0, "PHP never ran for a probe");
    // Paths that name no script still reach the front controller.
    let env = site.env("/missing-page").await;
    assert_eq!(env["SCRIPT_FILENAME"], site.file("index.php"));

    // Caddy: missing scripts go to the front controller, with the original URI.
    let caddy = site
        .builder()
        .front_controller_for_missing_scripts(true)
        .build();
    let res = caddy
        .clone()
        .oneshot(get("/missing.php?x=1"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8_lossy(&body(res).await.unwrap()).into_owned();
    assert!(
        text.contains(&format!("SCRIPT_FILENAME={}", site.file("index.php"))),
        "{text}"
    );
    assert!(text.contains("REQUEST_URI=/missing.php?x=1"), "{text}");
    // A script name after a static file is a 404 in both.
    for svc in [site.builder().build(), caddy] {
        let res = svc.oneshot(get("/style.css/x.php")).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn invalid_percent_encoding_in_a_site_is_400_before_anything_else() {
    let site = site().await;
    for path in ["/x.php/%ZZ", "/info.php/%ZZ", "/%zz", "/style.css%"] {
        assert_eq!(
            site.get(path).await.status(),
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    assert_eq!(site.fake.connections(), 0);
}
