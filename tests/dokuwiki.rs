//! A real, unmodified PHP application end to end: Debian's DokuWiki package served by a
//! `PhpSite` configured exactly as the gateway example's
//! `--php /=unix:SOCK,root=ROOT,deny=/data:/conf:/bin:/inc:/vendor,index=doku.php`
//! (the same parsing and builder code: `examples/support/mount.rs`), in front of real
//! php-fpm, over real HTTP.
//!
//! Each test copies the application (`cp -rL /usr/share/dokuwiki`, Debian's
//! `/etc/dokuwiki` as `conf/`) into a temporary root and configures it the way a
//! deployment does, without touching DokuWiki's code: `inc/preload.php` (Debian's own
//! points at /etc/dokuwiki) defines `DOKU_CONF`, and `conf/local.php` sets the data
//! directory (`data/` in the root, the upstream layout the deny list protects), no ACL
//! and `userewrite = 2` (`/doku.php/wiki:page` pretty URLs through PATH_INFO).
//!
//! Skips loudly without DokuWiki or php-fpm (fails with `FCGI_INTEROP=require`).

mod support;

#[path = "../examples/support/mount.rs"]
mod mount;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use axum::Router;
use http::StatusCode;
use support::http::{Multipart, Reply, Server, Session};
use support::json::{self, Json};
use support::{Kind, Options};

const DOKUWIKI: &str = "/usr/share/dokuwiki";
const DEBIAN_CONF: &str = "/etc/dokuwiki";
const INSTALL_HINT: &str = "install it with `apt-get install dokuwiki` (scripts/test.sh does)";

/// The gateway's `--php` options for DokuWiki (after `/=unix:SOCK,root=ROOT,`).
const GATEWAY_OPTIONS: &str = "deny=/data:/conf:/bin:/inc:/vendor,index=doku.php";

const START_PAGE: &str = "====== Welcome ======\nHello from **tower-fastcgi**.\n";
const SOME_PAGE: &str = "====== Some page ======\nReached through a //pretty link//.\n";

/// A DokuWiki installation in a temporary directory, its php-fpm, and the gateway's
/// `PhpSite` serving it on 127.0.0.1.
struct Wiki {
    root: PathBuf,
    server: Server,
    backend: support::RunningBackend,
    // Removed last, after php-fpm has stopped.
    _dir: tempfile::TempDir,
}

impl Wiki {
    /// The standard setup.
    async fn start() -> Option<Wiki> {
        Wiki::start_with("", |_| String::new()).await
    }

    /// `conf` is added to `conf/local.php`; `gateway` gives extra gateway options for the
    /// root (e.g. `,sendfile=...`).
    async fn start_with(conf: &str, gateway: impl Fn(&Path) -> String) -> Option<Wiki> {
        if !support::app_or_skip("DokuWiki", Path::new(DOKUWIKI), INSTALL_HINT) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("dokuwiki-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().join("wiki");
        install(&root, conf).unwrap_or_else(|e| panic!("installing DokuWiki failed: {e}"));

        let backend = support::backend_or_skip_with(
            Kind::PhpFpmUnix,
            Options::default().document_root(&root).workers(4),
        )?;
        let support::Addr::Unix(socket) = backend.addr().clone() else {
            unreachable!("PhpFpmUnix listens on a Unix socket")
        };
        let spec = format!(
            "/=unix:{},root={},{GATEWAY_OPTIONS}{}",
            socket.display(),
            root.display(),
            gateway(&root)
        );
        let app = mount::parse_mount(mount::Kind::Php, &spec)
            .and_then(|m| m.mount(Router::new()))
            .unwrap_or_else(|e| panic!("gateway mount {spec:?}: {e}"));
        let server = Server::start(app).await;
        Some(Wiki {
            root,
            server,
            backend,
            _dir: dir,
        })
    }

    fn client(&self) -> Session {
        self.server.client()
    }

    fn context(&self, what: &str, reply: &Reply) -> String {
        let text = reply.text();
        let shown: String = text.chars().take(3000).collect();
        format!(
            "{what}: {} {:?}\n{shown}\n{}",
            reply.status,
            reply.headers,
            self.backend.log_report()
        )
    }

    /// GET that must answer 200.
    async fn get_ok(&self, client: &mut Session, target: &str) -> Reply {
        let reply = client.get(target).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            self.context(target, &reply)
        );
        reply
    }
}

/// Copies DokuWiki and its Debian configuration into `root` and configures it there.
fn install(root: &Path, extra_conf: &str) -> io::Result<()> {
    copy_tree(Path::new(DOKUWIKI), root)?;
    copy_tree(Path::new(DEBIAN_CONF), &root.join("conf"))?;
    // Debian's inc/preload.php points DokuWiki at /etc/dokuwiki; this one at conf/.
    fs::write(
        root.join("inc/preload.php"),
        format!(
            "<?php\n// Written by tests/dokuwiki.rs: the configuration of this copy.\n\
             define('DOKU_CONF', '{}/conf/');\n",
            root.display()
        ),
    )?;
    fs::write(
        root.join("conf/local.php"),
        format!(
            "<?php\n\
             $conf['title'] = 'tower-fastcgi test wiki';\n\
             $conf['savedir'] = '{}/data';\n\
             $conf['useacl'] = 0;\n\
             $conf['userewrite'] = 2;\n\
             $conf['updatecheck'] = 0;\n\
             $conf['dnslookups'] = 0;\n\
             {extra_conf}\n",
            root.display()
        ),
    )?;
    for sub in [
        "pages",
        "attic",
        "meta",
        "media",
        "media_attic",
        "media_meta",
        "cache",
        "index",
        "locks",
        "tmp",
        "log",
    ] {
        fs::create_dir_all(root.join("data").join(sub))?;
    }
    fs::create_dir_all(root.join("data/pages/wiki"))?;
    fs::write(root.join("data/pages/start.txt"), START_PAGE)?;
    fs::write(root.join("data/pages/wiki/somepage.txt"), SOME_PAGE)?;
    // Deployed a while ago (see copy_tree).
    let earlier = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for written in [
        "inc/preload.php",
        "conf/local.php",
        "data/pages/start.txt",
        "data/pages/wiki/somepage.txt",
    ] {
        fs::File::options()
            .write(true)
            .open(root.join(written))?
            .set_modified(earlier)?;
    }
    Ok(())
}

/// `cp -rL --preserve=timestamps`: copies a tree, following symlinks (Debian links
/// `lib/tpl` and `lib/plugins` into /var/lib/dokuwiki). Entries this user may not read
/// (Debian keeps a few private to root and www-data: the ACL files, the `testing` plugin)
/// are skipped with a note.
///
/// Modification times matter: DokuWiki's caches (css.php, js.php) count as stale while
/// a file they depend on is as new as they are, which a fresh copy would be.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::metadata(from)?;
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        let entries = match fs::read_dir(from) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("dokuwiki: skipping unreadable {}", from.display());
                return Ok(());
            }
            other => other?,
        };
        for entry in entries {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        match fs::copy(from, to) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("dokuwiki: skipping unreadable {}", from.display());
                Ok(())
            }
            Err(e) => Err(e),
            Ok(_) => fs::File::options()
                .write(true)
                .open(to)?
                .set_modified(meta.modified()?),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Just enough HTML: opening tags, attributes, forms.

/// The opening tags `<name ...>` in `html`.
fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = html[from..].find(&open).map(|i| i + from) {
        let after = i + open.len();
        from = after;
        if !html[after..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/') {
            continue;
        }
        if let Some(end) = html[after..].find('>') {
            found.push(&html[i..=after + end]);
        }
    }
    found
}

/// An attribute's value (double-quoted, as DokuWiki writes them), entities decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#039;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A form's action and the fields a browser would submit without clicking a button:
/// its inputs with a name and value, and its textareas.
#[derive(Debug)]
struct Form {
    action: String,
    fields: Vec<(String, String)>,
}

impl Form {
    fn find(html: &str, id: &str) -> Option<Form> {
        let start = html.find(&format!("<form id=\"{id}\""))?;
        let len = html[start..].find("</form>")?;
        let html = &html[start..start + len];
        let action = attr(tags(html, "form").first()?, "action")?;
        let mut fields = Vec::new();
        for input in tags(html, "input") {
            if let (Some(name), Some(value)) = (attr(input, "name"), attr(input, "value")) {
                fields.push((name, value));
            }
        }
        for textarea in tags(html, "textarea") {
            let name = attr(textarea, "name")?;
            let content_start = html.find(textarea)? + textarea.len();
            let content_len = html[content_start..].find("</textarea>")?;
            // Browsers drop one newline right after the opening tag.
            let content = &html[content_start..content_start + content_len];
            let content = content.strip_prefix('\n').unwrap_or(content);
            fields.push((name, unescape(content)));
        }
        Some(Form { action, fields })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: &str, value: &str) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        self.fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }
}

/// The first hidden `sectok` field of a page (DokuWiki's CSRF token; empty for anonymous
/// users, still sent like a browser would).
fn sectok(html: &str) -> Option<String> {
    tags(html, "input")
        .into_iter()
        .find(|t| attr(t, "name").as_deref() == Some("sectok"))
        .and_then(|t| attr(t, "value"))
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn main_page_and_pretty_urls_render() {
    let Some(wiki) = Wiki::start().await else {
        return;
    };
    let mut client = wiki.client();

    let reply = wiki.get_ok(&mut client, "/").await;
    assert_eq!(reply.header("content-type"), "text/html; charset=utf-8");
    let html = reply.text();
    for expected in [
        "<div id=\"dokuwiki__site\">",
        "tower-fastcgi test wiki",
        "id=\"welcome\">Welcome</h1>",
        "Hello from <strong>tower-fastcgi</strong>.",
        // DokuWiki derived its base URL and pretty links from SCRIPT_NAME and PATH_INFO.
        "href=\"/doku.php/start?do=edit\"",
        "href=\"/lib/exe/css.php?t=dokuwiki&amp;tseed=",
    ] {
        assert!(html.contains(expected), "{expected:?} missing\n{html}");
    }
    assert!(
        client.cookies().contains_key("DokuWiki"),
        "a session cookie: {:?}",
        client.cookies()
    );

    // The pretty URL of userewrite=2: the page id travels as PATH_INFO.
    let pretty = wiki.get_ok(&mut client, "/doku.php/wiki:somepage").await;
    assert!(
        pretty
            .text()
            .contains("Reached through a <em>pretty link</em>."),
        "{}",
        wiki.context("pretty URL", &pretty)
    );
    assert!(pretty.text().contains("id=\"some_page\">Some page</h1>"));
    // The same page by query string, and its source with a query after the path info.
    let by_query = wiki.get_ok(&mut client, "/doku.php?id=wiki:somepage").await;
    assert!(
        by_query
            .text()
            .contains("Reached through a <em>pretty link</em>.")
    );
    let raw = wiki
        .get_ok(&mut client, "/doku.php/wiki:somepage?do=export_raw")
        .await;
    assert_eq!(raw.text(), SOME_PAGE);
    assert!(raw.header("content-type").starts_with("text/plain"));
    // A front-controller path (no such file) reaches doku.php too.
    let front = wiki.get_ok(&mut client, "/no/such/file").await;
    assert!(front.text().contains("<div id=\"dokuwiki__site\">"));
}

#[tokio::test]
async fn editing_and_saving_a_page() {
    let Some(wiki) = Wiki::start().await else {
        return;
    };
    let mut client = wiki.client();
    let file = wiki.root.join("data/pages/wiki/newpage.txt");

    for (round, text) in [
        "First version, **saved** through tower-fastcgi.\n",
        "Second version: <edited> & more, ✓.\n",
    ]
    .into_iter()
    .enumerate()
    {
        let edit = wiki
            .get_ok(&mut client, "/doku.php/wiki:newpage?do=edit")
            .await;
        let mut form = Form::find(&edit.text(), "dw__editform")
            .unwrap_or_else(|| panic!("no edit form\n{}", wiki.context("edit", &edit)));
        assert_eq!(form.action, "/doku.php/wiki:newpage?do=edit");
        assert!(form.get("sectok").is_some(), "{form:?}");
        assert_eq!(form.get("id"), Some("wiki:newpage"));
        if round == 1 {
            // The textarea holds the first version, and `date` its modification time.
            assert_eq!(
                form.get("wikitext").map(str::trim_end),
                Some("First version, **saved** through tower-fastcgi.")
            );
            assert_ne!(form.get("date"), Some(""));
        }
        form.set("wikitext", text);
        form.set("summary", "edited by the test");
        form.set("do[save]", "1");

        // Saved, then redirected to the page (DokuWiki's Post/Redirect/Get).
        let saved = client.post_form(&form.action, &form.pairs()).await;
        assert!(
            saved.status.is_redirection(),
            "{}",
            wiki.context("save", &saved)
        );
        assert!(
            saved.header("location").ends_with("/doku.php/wiki:newpage"),
            "{}",
            wiki.context("save", &saved)
        );
        // DokuWiki normalises line ends and trailing whitespace.
        assert_eq!(
            fs::read_to_string(&file).unwrap_or_default().trim_end(),
            text.trim_end()
        );
    }

    let page = wiki.get_ok(&mut client, "/doku.php/wiki:newpage").await;
    assert!(
        page.text()
            .contains("Second version: &lt;edited&gt; &amp; more, ✓."),
        "{}",
        wiki.context("page", &page)
    );
    // The old revision went to the attic, the change to the changelog.
    let revisions = wiki
        .get_ok(&mut client, "/doku.php/wiki:newpage?do=revisions")
        .await;
    assert!(revisions.text().contains("edited by the test"));
}

/// The PNG the tests upload: DokuWiki's own logo, from the copy.
fn png(wiki: &Wiki) -> Vec<u8> {
    fs::read(wiki.root.join("lib/tpl/dokuwiki/images/logo.png")).expect("logo.png")
}

/// Uploads `data` as `wiki:{name}` the way the media manager's uploader does (a
/// multipart POST to lib/exe/ajax.php with the CSRF token).
async fn upload(wiki: &Wiki, client: &mut Session, name: &str, data: &[u8]) {
    let manager = wiki
        .get_ok(client, "/doku.php/start?do=media&ns=wiki&tab_files=upload")
        .await;
    let token = sectok(&manager.text())
        .unwrap_or_else(|| panic!("no sectok\n{}", wiki.context("media manager", &manager)));
    let form = Multipart::new()
        .field("call", "mediaupload")
        .field("ns", "wiki")
        .field("sectok", &token)
        .field("mediaid", name)
        .file("qqfile", name, "image/png", data);
    let reply = client.post_multipart("/lib/exe/ajax.php", &form).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        wiki.context("upload", &reply)
    );
    let answer = json::parse(&reply.text())
        .unwrap_or_else(|e| panic!("{e}\n{}", wiki.context("upload", &reply)));
    assert_eq!(
        answer.get("success"),
        Some(&Json::Bool(true)),
        "{}",
        wiki.context("upload", &reply)
    );
    assert_eq!(
        answer.get("id").and_then(Json::as_str),
        Some(format!("wiki:{name}").as_str())
    );
}

#[tokio::test]
async fn uploading_media_and_fetching_it() {
    let Some(wiki) = Wiki::start().await else {
        return;
    };
    let mut client = wiki.client();
    let data = png(&wiki);
    upload(&wiki, &mut client, "upload.png", &data).await;
    assert_eq!(
        fs::read(wiki.root.join("data/media/wiki/upload.png")).ok(),
        Some(data.clone()),
        "stored as uploaded"
    );

    // Fetched through DokuWiki, by PATH_INFO and by query string.
    for target in [
        "/lib/exe/fetch.php/wiki:upload.png",
        "/lib/exe/fetch.php?media=wiki:upload.png",
    ] {
        let reply = wiki.get_ok(&mut client, target).await;
        assert_eq!(reply.header("content-type"), "image/png", "{target}");
        assert!(reply.body == data, "{target}: other bytes");
    }
    // fetch.php answers ranges itself.
    let reply = client
        .get_with(
            "/lib/exe/fetch.php/wiki:upload.png",
            &[("range", "bytes=0-7")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], &data[..8]);
    // It is listed in the media manager, and not reachable in data/.
    let listing = wiki
        .get_ok(&mut client, "/doku.php/start?do=media&ns=wiki")
        .await;
    assert!(listing.text().contains("upload.png"));
    let reply = client.get("/data/media/wiki/upload.png").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn private_paths_are_404() {
    let Some(wiki) = Wiki::start().await else {
        return;
    };
    let mut client = wiki.client();
    for target in [
        "/data/pages/start.txt",
        "/data/pages/wiki/somepage.txt",
        "/%64ata/pages/start.txt",
        "/data/../data/pages/start.txt",
        "/lib/../data/pages/start.txt",
        "/conf/local.php",
        "/conf/dokuwiki.php",
        "/conf/",
        "/%63onf/local.php",
        "/%63%6F%6E%66/local.php",
        "/lib/%2e%2e/conf/local.php",
        "/inc/init.php",
        "/inc/preload.php",
        "/inc/",
        "/vendor/autoload.php",
        "/bin/indexer.php",
        "/.htaccess",
        "/%2ehtaccess",
        "/data/.htaccess",
        "/inc/.htaccess",
    ] {
        let reply = client.get(target).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{}",
            wiki.context(target, &reply)
        );
        let text = reply.text();
        for leak in [
            "<?php",
            "savedir",
            "Hello from",
            "Reached through",
            "<div id=\"dokuwiki__site\">",
        ] {
            assert!(!text.contains(leak), "{target} shows {leak:?}");
        }
    }
}

#[tokio::test]
async fn static_assets_load() {
    let Some(wiki) = Wiki::start().await else {
        return;
    };
    let mut client = wiki.client();
    let html = wiki.get_ok(&mut client, "/").await.text();

    // Everything local the main page links to: css.php and js.php (PHP), images and the
    // favicon (static files).
    let mut assets: Vec<String> = tags(&html, "link")
        .into_iter()
        .chain(tags(&html, "script"))
        .chain(tags(&html, "img"))
        .filter_map(|tag| attr(tag, "href").or_else(|| attr(tag, "src")))
        .filter(|url| url.starts_with("/lib/"))
        .collect();
    assets.sort();
    assets.dedup();
    for kind in [
        "/lib/exe/css.php",
        "/lib/exe/js.php",
        "/lib/exe/jquery.php",
        "/lib/tpl/dokuwiki/images/logo.png",
        "/lib/tpl/dokuwiki/images/favicon.ico",
    ] {
        assert!(
            assets.iter().any(|a| a.starts_with(kind)),
            "{kind} not linked: {assets:?}"
        );
    }
    for url in &assets {
        let reply = wiki.get_ok(&mut client, url).await;
        let content_type = reply.header("content-type");
        let path = url.split('?').next().unwrap_or(url);
        let expected = match path.rsplit('.').next() {
            Some("png") => "image/png",
            Some("gif") => "image/gif",
            Some("ico") => "image/x-icon",
            _ if path.ends_with("/css.php") => "text/css",
            _ if path.ends_with("js.php") || path.ends_with("jquery.php") => {
                "application/javascript"
            }
            _ => "",
        };
        assert!(content_type.starts_with(expected), "{url}: {content_type}");
        if !path.ends_with(".php") {
            let on_disk = fs::read(wiki.root.join(path.trim_start_matches('/'))).unwrap();
            assert!(reply.body == on_disk, "{url}: other bytes than the file");
        }
    }

    // The compiled stylesheet and the scripts are DokuWiki's.
    let css_url = assets
        .iter()
        .find(|a| a.starts_with("/lib/exe/css.php"))
        .unwrap();
    let css = wiki.get_ok(&mut client, css_url).await;
    assert!(
        css.text().contains(".dokuwiki"),
        "{}",
        wiki.context("css", &css)
    );
    let js_url = assets
        .iter()
        .find(|a| a.starts_with("/lib/exe/js.php"))
        .unwrap();
    assert!(
        wiki.get_ok(&mut client, js_url)
            .await
            .text()
            .contains("DOKU_BASE")
    );

    // Conditional requests: css.php answers them itself, static files through ServeFile.
    let etag = css.header("etag").to_owned();
    assert!(!etag.is_empty(), "css.php sends an ETag");
    let reply = client.get_with(css_url, &[("if-none-match", &etag)]).await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_MODIFIED,
        "{}",
        wiki.context("css 304", &reply)
    );
    let logo = wiki
        .get_ok(&mut client, "/lib/tpl/dokuwiki/images/logo.png")
        .await;
    let reply = client
        .get_with(
            "/lib/tpl/dokuwiki/images/logo.png",
            &[("if-none-match", logo.header("etag"))],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    // PHP files under lib/ run, they are never served as source.
    let reply = client
        .get("/lib/tpl/dokuwiki/images/pagetools-build.php")
        .await;
    assert!(!reply.text().contains("<?php"));
}

#[tokio::test]
async fn media_downloads_handed_to_the_gateway_with_x_accel_redirect() {
    // DokuWiki's nginx mode: fetch.php answers `X-Accel-Redirect: /data/media/...`, and
    // the gateway serves that file although /data itself stays denied.
    let Some(wiki) = Wiki::start_with("$conf['xsendfile'] = 3;", |root| {
        format!(",sendfile=/data:{}/data", root.display())
    })
    .await
    else {
        return;
    };
    let mut client = wiki.client();
    let data = png(&wiki);
    upload(&wiki, &mut client, "handed.png", &data).await;

    let reply = wiki
        .get_ok(&mut client, "/lib/exe/fetch.php/wiki:handed.png")
        .await;
    assert!(reply.body == data, "{}", wiki.context("accel", &reply));
    assert_eq!(reply.header("content-type"), "image/png");
    assert!(!reply.headers.contains_key("x-accel-redirect"));
    // DokuWiki's own ETag is an MD5 in quotes; ServeFile's has a dash.
    assert!(
        reply.header("etag").contains('-'),
        "served by the gateway: {:?}",
        reply.headers
    );
    let reply = client
        .get_with(
            "/lib/exe/fetch.php/wiki:handed.png",
            &[("range", "bytes=1-3")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], b"PNG");
    let reply = client.get("/data/media/wiki/handed.png").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}
