//! Unit tests of `env.rs`.
use super::*;
use crate::proto::{Decoder, PairIter, Record};
use bytes::BytesMut;
use std::collections::BTreeMap;

fn env_of(
    cfg: &CgiConfig,
    req: http::Request<()>,
    target: &Script<'_>,
    content_length: Option<u64>,
) -> Result<BTreeMap<String, String>, Error> {
    let connection = ConnectionInfo {
        remote: Some("192.0.2.7:51000".parse().unwrap()),
        local: Some("127.0.0.1:8080".parse().unwrap()),
        ..ConnectionInfo::default()
    };
    env_with(cfg, req, target, content_length, Some(connection))
}

fn env_with(
    cfg: &CgiConfig,
    req: http::Request<()>,
    target: &Script<'_>,
    content_length: Option<u64>,
    connection: Option<ConnectionInfo>,
) -> Result<BTreeMap<String, String>, Error> {
    env_in_role(
        cfg,
        req,
        target,
        content_length,
        connection,
        Role::Responder,
        None,
    )
}

fn env_in_role(
    cfg: &CgiConfig,
    req: http::Request<()>,
    target: &Script<'_>,
    content_length: Option<u64>,
    connection: Option<ConnectionInfo>,
    role: Role,
    data: Option<DataFile>,
) -> Result<BTreeMap<String, String>, Error> {
    let (parts, ()) = req.into_parts();
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let info = RequestInfo {
        parts: &parts,
        target,
        request_uri: &uri,
        content_length,
        connection,
        role,
        data,
    };
    let mut buf = BytesMut::new();
    let mut enc = ParamsEncoder::new(&mut buf, 1);
    write_params(&mut enc, cfg, &info)?;
    enc.finish();
    let mut dec = Decoder::new();
    let mut map = BTreeMap::new();
    while let Some(Record::Params { data, .. }) = dec.decode(&mut buf).unwrap() {
        for pair in PairIter::new(&data) {
            let (n, v) = pair.unwrap();
            let name = String::from_utf8(n.to_vec()).unwrap();
            assert!(
                map.insert(name.clone(), String::from_utf8_lossy(v).into_owned())
                    .is_none(),
                "{name} sent twice"
            );
        }
    }
    Ok(map)
}

fn app_target() -> Script<'static> {
    Script {
        script_name: Cow::Borrowed(b"/app"),
        path_info: Cow::Borrowed(b"/x y"),
        ..Script::default()
    }
}

#[test]
fn standard_variables() {
    let cfg = CgiConfig::default();
    let req = http::Request::post("/app/x%20y?a=1&b=%20")
        .header("host", "example.com:8443")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", "5")
        .body(())
        .unwrap();
    let env = env_of(&cfg, req, &app_target(), Some(5)).unwrap();
    assert_eq!(env["GATEWAY_INTERFACE"], "CGI/1.1");
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert_eq!(env["QUERY_STRING"], "a=1&b=%20");
    assert_eq!(env["REQUEST_URI"], "/app/x%20y?a=1&b=%20");
    assert_eq!(env["SCRIPT_NAME"], "/app");
    assert_eq!(env["PATH_INFO"], "/x y");
    assert_eq!(env["DOCUMENT_URI"], "/app/x y");
    assert_eq!(env["SERVER_NAME"], "example.com");
    assert_eq!(env["SERVER_PORT"], "8443");
    assert_eq!(env["SERVER_ADDR"], "127.0.0.1");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["REMOTE_ADDR"], "192.0.2.7");
    assert_eq!(env["REMOTE_PORT"], "51000");
    assert_eq!(env["CONTENT_LENGTH"], "5");
    assert_eq!(env["CONTENT_TYPE"], "application/x-www-form-urlencoded");
    assert_eq!(env["REQUEST_SCHEME"], "http");
    assert_eq!(env["REDIRECT_STATUS"], "200");
    assert_eq!(env["HTTP_HOST"], "example.com:8443");
    assert!(!env.contains_key("HTTPS"));
    assert!(!env.contains_key("HTTP_CONTENT_TYPE"));
    assert!(!env.contains_key("HTTP_CONTENT_LENGTH"));
    assert!(!env.contains_key("PATH_TRANSLATED"), "no document root");
    assert!(env["SERVER_SOFTWARE"].starts_with("tower-fastcgi/"));
}

#[test]
fn get_without_body_has_no_content_length_and_empty_query() {
    let env = env_of(
        &CgiConfig::default(),
        http::Request::get("/app").body(()).unwrap(),
        &Script::default(),
        None,
    )
    .unwrap();
    assert_eq!(env["QUERY_STRING"], "");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert!(!env.contains_key("CONTENT_LENGTH"));
    assert!(!env.contains_key("CONTENT_TYPE"));
    assert!(!env.contains_key("PATH_INFO"));
    assert_eq!(env["SERVER_PORT"], "8080", "falls back to the local port");
    assert_eq!(env["SERVER_NAME"], "127.0.0.1");
}

#[test]
fn server_name_is_never_missing() {
    let mut req = http::Request::get("/app").body(()).unwrap();
    *req.version_mut() = http::Version::HTTP_10;
    let env = env_with(&CgiConfig::default(), req, &Script::default(), None, None).unwrap();
    assert_eq!(env["SERVER_NAME"], "localhost");
    assert_eq!(env["SERVER_PORT"], "80");
}

#[test]
fn header_hygiene() {
    let req = http::Request::get("/")
        .header("proxy", "http://evil.example:3128")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x_forwarded_for", "6.6.6.6")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("accept", "text/html")
        .header("accept", "*/*")
        .header("connection", "keep-alive, X-Hop")
        .header("x-hop", "secret")
        .header("keep-alive", "300")
        .header("te", "trailers")
        .header("upgrade", "h2c")
        .header("authorization", "Basic dTpw")
        .header("proxy-authorization", "Basic cHJveHk=")
        .body(())
        .unwrap();
    let env = env_of(&CgiConfig::default(), req, &Script::default(), None).unwrap();
    assert!(!env.contains_key("HTTP_PROXY"), "httpoxy");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "10.0.0.1", "no _ aliasing");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
    assert_eq!(env["HTTP_ACCEPT"], "text/html, */*");
    for gone in [
        "HTTP_CONNECTION",
        "HTTP_X_HOP",
        "HTTP_KEEP_ALIVE",
        "HTTP_TE",
        "HTTP_UPGRADE",
        "HTTP_PROXY_AUTHORIZATION",
    ] {
        assert!(!env.contains_key(gone), "{gone}");
    }
    assert_eq!(env["HTTP_AUTHORIZATION"], "Basic dTpw");

    let cfg = CgiConfig {
        pass_authorization: false,
        ..CgiConfig::default()
    };
    let req = http::Request::get("/")
        .header("authorization", "Basic dTpw")
        .body(())
        .unwrap();
    let env = env_of(&cfg, req, &Script::default(), None).unwrap();
    assert!(!env.contains_key("HTTP_AUTHORIZATION"));
}

#[test]
fn request_data_cannot_set_arbitrary_params() {
    // Header names are always prefixed with HTTP_ and can't contain '_' by default,
    // so no header can produce PHP_VALUE, SCRIPT_FILENAME or similar.
    let req = http::Request::get("/")
        .header("php-value", "auto_prepend_file=php://input")
        .header("script-filename", "/etc/passwd")
        .body(())
        .unwrap();
    let env = env_of(&CgiConfig::default(), req, &Script::default(), None).unwrap();
    assert!(!env.contains_key("PHP_VALUE"));
    assert!(!env.contains_key("SCRIPT_FILENAME"));
    assert_eq!(env["HTTP_PHP_VALUE"], "auto_prepend_file=php://input");
}

#[test]
fn user_params_override_computed_ones() {
    let cfg = CgiConfig {
        params: vec![
            ("SERVER_NAME".into(), "configured.example".into()),
            ("HTTP_HOST".into(), "pinned".into()),
            ("APP_ENV".into(), "prod".into()),
        ],
        ..CgiConfig::default()
    };
    let req = http::Request::get("/")
        .header("host", "evil")
        .body(())
        .unwrap();
    let env = env_of(&cfg, req, &Script::default(), None).unwrap();
    assert_eq!(env["SERVER_NAME"], "configured.example");
    assert_eq!(env["HTTP_HOST"], "pinned");
    assert_eq!(env["APP_ENV"], "prod");
}

#[test]
fn https_and_http2_authority() {
    let cfg = CgiConfig::default();
    let req = http::Request::get("https://example.org/x?q")
        .version(Version::HTTP_2)
        .body(())
        .unwrap();
    let env = env_of(&cfg, req, &Script::default(), None).unwrap();
    assert_eq!(env["HTTPS"], "on");
    assert_eq!(env["REQUEST_SCHEME"], "https");
    assert_eq!(env["HTTP_HOST"], "example.org");
    assert_eq!(env["SERVER_NAME"], "example.org");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/2.0");
}

#[test]
fn ipv6_hosts() {
    assert_eq!(
        split_host_port(b"[::1]:3000"),
        (Some(&b"[::1]"[..]), Some(&b"3000"[..]))
    );
    assert_eq!(split_host_port(b"[::1]"), (Some(&b"[::1]"[..]), None));
    assert_eq!(split_host_port(b"host:"), (Some(&b"host"[..]), None));
    assert_eq!(split_host_port(b"host:x1"), (Some(&b"host"[..]), None));
    let mut a = AddrText::new();
    assert_eq!(a.ip("[::1]:80".parse().unwrap()), b"::1");
}

#[test]
fn document_root_variables() {
    let target = Script {
        script_name: Cow::Borrowed(b"/blog/index.php"),
        path_info: Cow::Borrowed(b"/2024/post"),
        script_filename: Some(Cow::Borrowed(Path::new("/srv/www/index.php"))),
        document_root: Some(Path::new("/srv/www")),
    };
    let env = env_of(
        &CgiConfig::default(),
        http::Request::get("/blog/index.php/2024/post")
            .body(())
            .unwrap(),
        &target,
        None,
    )
    .unwrap();
    assert_eq!(env["SCRIPT_FILENAME"], "/srv/www/index.php");
    assert_eq!(env["DOCUMENT_ROOT"], "/srv/www");
    assert_eq!(env["PATH_TRANSLATED"], "/srv/www/2024/post");
    assert_eq!(env["DOCUMENT_URI"], "/blog/index.php/2024/post");
}

#[test]
fn size_limits() {
    let cfg = CgiConfig {
        max_params_len: 1024,
        ..CgiConfig::default()
    };
    let req = http::Request::get("/")
        .header("x-big", "a".repeat(2000))
        .body(())
        .unwrap();
    let err = env_of(&cfg, req, &Script::default(), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RequestHeadersTooLarge);

    let cfg = CgiConfig {
        max_params_len: 1 << 20,
        ..CgiConfig::default()
    };
    let req = http::Request::get("/")
        .header("x-big", "a".repeat(70_000))
        .body(())
        .unwrap();
    let err = env_of(&cfg, req, &Script::default(), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RequestHeadersTooLarge);
}

#[test]
fn an_authorizer_gets_no_path_variables_no_length_and_always_the_authorization() {
    // Even a service that keeps Authorization from its responders sends it to its
    // authorizer.
    let cfg = CgiConfig {
        pass_authorization: false,
        ..CgiConfig::default()
    };
    let req = http::Request::post("/app/x%20y?a=1")
        .header("host", "example.com")
        .header("authorization", "Basic YWxpY2U6cw==")
        .header("content-type", "text/plain")
        .header("content-length", "5")
        .body(())
        .unwrap();
    let target = Script {
        script_filename: Some(Cow::Borrowed(Path::new("/srv/auth.php"))),
        ..app_target()
    };
    let env = env_in_role(&cfg, req, &target, Some(5), None, Role::Authorizer, None).unwrap();
    assert_eq!(env["FCGI_ROLE"], "AUTHORIZER");
    assert_eq!(env["HTTP_AUTHORIZATION"], "Basic YWxpY2U6cw==");
    assert_eq!(env["REQUEST_URI"], "/app/x%20y?a=1");
    assert_eq!(env["SCRIPT_FILENAME"], "/srv/auth.php");
    assert_eq!(env["CONTENT_TYPE"], "text/plain");
    for absent in [
        "SCRIPT_NAME",
        "PATH_INFO",
        "PATH_TRANSLATED",
        "DOCUMENT_URI",
        "CONTENT_LENGTH",
    ] {
        assert!(!env.contains_key(absent), "{absent} sent to an authorizer");
    }
}

#[test]
fn a_filter_is_told_the_length_and_modification_time_of_its_data_file() {
    let req = http::Request::get("/docs/a.txt").body(()).unwrap();
    let target = Script {
        script_name: Cow::Borrowed(b"/docs/a.txt"),
        script_filename: Some(Cow::Borrowed(Path::new("/srv/docs/a.txt"))),
        ..Script::default()
    };
    let data = DataFile {
        length: 52_428_800,
        last_mod: 1_700_000_000,
    };
    let cfg = CgiConfig::default();
    let env = env_in_role(&cfg, req, &target, None, None, Role::Filter, Some(data)).unwrap();
    assert_eq!(env["FCGI_ROLE"], "FILTER");
    assert_eq!(env["FCGI_DATA_LENGTH"], "52428800");
    assert_eq!(env["FCGI_DATA_LAST_MOD"], "1700000000");
    assert_eq!(env["SCRIPT_FILENAME"], "/srv/docs/a.txt");
    assert_eq!(env["SCRIPT_NAME"], "/docs/a.txt");
}
