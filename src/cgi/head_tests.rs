//! Unit tests of `head.rs`.
use super::*;

fn parse_all(input: &[u8]) -> Result<(ResponseHead, Bytes), Error> {
    let mut p = HeadParser::new(64 * 1024);
    match p.push(Bytes::copy_from_slice(input))? {
        Some(done) => Ok(done),
        None => Err(invalid("incomplete")),
    }
}

#[test]
fn php_fpm_style_head() {
    let (head, body) = parse_all(
        b"X-Powered-By: PHP/8.2.36\r\nStatus: 404 Not Found\r\nContent-type: text/html; charset=UTF-8\r\n\r\nFile not found.\n",
    )
    .unwrap();
    assert_eq!(head.status, 404);
    assert_eq!(head.headers["content-type"], "text/html; charset=UTF-8");
    assert!(!head.headers.contains_key("status"));
    assert_eq!(&body[..], b"File not found.\n");
}

#[test]
fn lf_only_and_mixed_line_endings() {
    let (head, body) = parse_all(b"Content-Type: text/plain\nX-A: 1\r\n\nbody").unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["x-a"], "1");
    assert_eq!(&body[..], b"body");
    let (_, body) = parse_all(b"Content-Type: text/plain\n\r\n\r\nrest").unwrap();
    assert_eq!(
        &body[..],
        b"\r\nrest",
        "only the first blank line ends the head"
    );
}

#[test]
fn empty_head() {
    let (head, body) = parse_all(b"\r\nhello").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.headers.is_empty());
    assert_eq!(&body[..], b"hello");
}

#[test]
fn head_split_at_every_byte() {
    let input: &[u8] =
        b"Status: 201 Created\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Type: text/plain\r\n\r\nbody bytes";
    for cut in 0..input.len() {
        let mut p = HeadParser::new(1024);
        let first = p.push(Bytes::copy_from_slice(&input[..cut])).unwrap();
        let (head, body) = match first {
            Some((head, rest)) => (head, [&rest[..], &input[cut..]].concat()),
            None => {
                let (head, rest) = p
                    .push(Bytes::copy_from_slice(&input[cut..]))
                    .unwrap()
                    .expect("complete");
                (head, rest.to_vec())
            }
        };
        assert_eq!(head.status, 201, "cut {cut}");
        let cookies: Vec<_> = head.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"], "cut {cut}");
        assert_eq!(&body[..], b"body bytes", "cut {cut}");
    }
}

#[test]
fn byte_by_byte_is_linear_and_correct() {
    let mut input = Vec::new();
    for i in 0..100 {
        input.extend_from_slice(format!("X-H{i}: v\n").as_bytes());
    }
    input.extend_from_slice(b"\nB");
    let mut p = HeadParser::new(64 * 1024);
    let mut done = None;
    for b in &input {
        if let Some(d) = p.push(Bytes::copy_from_slice(&[*b])).unwrap() {
            done = Some(d);
            break;
        }
    }
    let (head, _) = done.unwrap();
    assert_eq!(head.headers.len(), 100);
}

#[test]
fn location_rules() {
    let (head, _) = parse_all(b"Location: https://example.com/x\r\n\r\n").unwrap();
    assert_eq!(head.status, 302);
    assert!(!head.local_redirect);
    let (head, _) = parse_all(b"Location: /local?q=1\r\n\r\n").unwrap();
    assert_eq!(head.status, 302);
    assert!(head.local_redirect);
    let (head, _) = parse_all(b"Location: //evil.example/\r\n\r\n").unwrap();
    assert!(
        !head.local_redirect,
        "a scheme-relative URI is not a local path"
    );
    let (head, _) = parse_all(b"Status: 301\r\nLocation: /moved\r\n\r\n").unwrap();
    assert_eq!(head.status, 301);
    assert!(!head.local_redirect);
}

#[test]
fn status_validation() {
    for good in ["200", "404 Not Found", "503\tbusy", "299 custom", "201"] {
        let input = format!("Status: {good}\r\n\r\n");
        assert!(parse_all(input.as_bytes()).is_ok(), "{good}");
    }
    for bad in [
        "",
        "20",
        "2000",
        "abc",
        "100 Continue",
        "101",
        "600",
        "99",
        "-20",
        "20x",
    ] {
        let input = format!("Status: {bad}\r\n\r\n");
        let err = parse_all(input.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponseHead, "{bad}");
    }
    let err = parse_all(b"Status: 200\r\nstatus: 404\r\n\r\n").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponseHead);
}

#[test]
fn custom_reason_phrases_are_kept() {
    for (input, reason) in [
        ("299 Custom", Some("Custom")),
        ("503\tbusy for now  ", Some("busy for now")),
        ("404 Not Found", None),
        ("404", None),
        ("404 ", None),
        ("200 ok", Some("ok")),
    ] {
        let head = format!("Status: {input}\r\n\r\n");
        let (head, _) = parse_all(head.as_bytes()).unwrap();
        assert_eq!(head.reason.as_deref(), reason.map(str::as_bytes), "{input}");
    }
}

#[test]
fn malformed_lines_are_502() {
    for bad in [
        &b"No colon here\r\n\r\n"[..],
        b"Content-Type : text/plain\r\n\r\n",
        b"X-A: 1\r\n folded\r\n\r\n",
        b"X-A: a\rb\r\n\r\n",
        b"X-A: a\0b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"Bad Name: x\r\n\r\n",
    ] {
        let err = parse_all(bad).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidResponseHead,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn more_fields_than_the_first_try_holds_are_all_kept() {
    let mut input = Vec::new();
    for i in 0..MAX_HEADERS {
        input.extend_from_slice(format!("X-{i}: v{i}\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let (head, _) = parse_all(&input).unwrap();
    assert_eq!(head.headers.len(), MAX_HEADERS);
    assert_eq!(head.headers["x-127"], "v127");
}

#[test]
fn too_many_headers() {
    let mut input = Vec::new();
    for i in 0..=MAX_HEADERS {
        input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    assert_eq!(
        parse_all(&input).unwrap_err().kind(),
        ErrorKind::InvalidResponseHead
    );
}

#[test]
fn size_limit() {
    let mut p = HeadParser::new(100);
    let long = vec![b'a'; 101];
    assert_eq!(
        p.push(Bytes::from(long)).unwrap_err().kind(),
        ErrorKind::ResponseHeadTooLarge
    );
    let mut p = HeadParser::new(100);
    p.push(Bytes::from_static(&[b'a'; 60])).unwrap();
    assert_eq!(
        p.push(Bytes::from_static(&[b'a'; 60])).unwrap_err().kind(),
        ErrorKind::ResponseHeadTooLarge
    );
    // A body after a small head may be large.
    let mut p = HeadParser::new(100);
    let mut input = b"X: y\r\n\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'b', 10_000));
    assert!(p.push(Bytes::from(input)).unwrap().is_some());
}

#[test]
fn framing_and_hop_by_hop_headers() {
    let (head, _) = parse_all(
        b"Content-Length: 5\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nUpgrade: h2c\r\nTE: trailers\r\nTrailer: X\r\nX-Keep: k\r\n\r\n",
    )
    .unwrap();
    assert_eq!(head.content_length, Some(5));
    assert_eq!(head.headers["content-length"], "5");
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
    ] {
        assert!(!head.headers.contains_key(gone), "{gone}");
    }
    assert_eq!(head.headers["x-keep"], "k");

    let (head, _) = parse_all(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n").unwrap();
    assert_eq!(head.content_length, None);
    assert!(!head.headers.contains_key("transfer-encoding"));
    assert!(!head.headers.contains_key("content-length"));

    let (head, _) = parse_all(b"Content-Length: 7, 7\r\n\r\n").unwrap();
    assert_eq!(head.content_length, Some(7));
    // What goes to the client is always one canonical number, whether the backend's
    // value is reused as written or rewritten.
    for (wire, sent) in [
        (&b"Content-Length: 7, 7\r\n\r\n"[..], "7"),
        (b"Content-Length: 007\r\n\r\n", "7"),
        (b"Content-Length: 0\r\n\r\n", "0"),
        (b"Content-Length: 13\r\n\r\n", "13"),
        (b"Content-Length: 13\r\nContent-Length: 013\r\n\r\n", "13"),
        (b"Content-Length: 013\r\nContent-Length: 13\r\n\r\n", "13"),
    ] {
        let (head, _) = parse_all(wire).unwrap();
        let values: Vec<_> = head.headers.get_all("content-length").iter().collect();
        assert_eq!(values, [sent], "{:?}", String::from_utf8_lossy(wire));
    }
    for bad in [
        &b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
        b"Content-Length: 5, 6\r\n\r\n",
        b"Content-Length: -1\r\n\r\n",
        b"Content-Length: 0x10\r\n\r\n",
        b"Content-Length: 99999999999999999999\r\n\r\n",
    ] {
        assert_eq!(
            parse_all(bad).unwrap_err().kind(),
            ErrorKind::InvalidResponseHead
        );
    }
}

#[test]
fn raw_utf8_values_pass() {
    let (head, _) = parse_all("X-Name: Zoë\r\n\r\n".as_bytes()).unwrap();
    assert_eq!(head.headers["x-name"].as_bytes(), "Zoë".as_bytes());
}

#[test]
fn an_authorizer_head_keeps_variable_names_as_written_and_out_of_the_headers() {
    let mut p = HeadParser::authorizer(1024);
    let raw = b"Status: 200\r\nVariable-AUTH_USER: alice\r\nVARIABLE-X-Team:  ops \r\nX-Other: 1\r\nVariable-: x\r\n\r\nbody";
    let (head, body) = p.push(Bytes::from_static(raw)).unwrap().unwrap();
    assert!(head.explicit_status);
    let vars: Vec<(&[u8], &[u8])> = head
        .variables
        .iter()
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .collect();
    assert_eq!(
        vars,
        [(&b"AUTH_USER"[..], &b"alice"[..]), (b"X-Team", b"ops")]
    );
    assert!(!head.headers.contains_key("variable-auth_user"));
    assert_eq!(head.headers["x-other"], "1");
    // `Variable-` with no name is an ordinary (odd) header, not a variable.
    assert!(head.headers.contains_key("variable-"));
    assert_eq!(body, "body");

    // A responder's head is untouched: Variable-* are ordinary headers there.
    let (head, _) = parse_all(b"Variable-AUTH_USER: alice\r\n\r\n").unwrap();
    assert!(head.variables.is_empty() && !head.explicit_status);
    assert_eq!(head.headers["variable-auth_user"], "alice");
}

fn parse_stream(input: &[u8]) -> Result<(ResponseHead, Bytes), Error> {
    let mut p = HeadParser::with_dialect(64 * 1024, Dialect::Stream);
    match p.push(Bytes::copy_from_slice(input))? {
        Some(done) => Ok(done),
        None => Err(invalid("incomplete")),
    }
}

#[test]
fn stream_heads_accept_a_status_line() {
    let (head, body) =
        parse_stream(b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n\r\nmade").unwrap();
    assert_eq!(head.status, 201);
    assert!(head.reason.is_none(), "the standard phrase is not kept");
    assert_eq!(head.headers["content-type"], "text/plain");
    assert_eq!(&body[..], b"made");
    let (head, _) = parse_stream(b"HTTP/1.0 299 Custom Thing\n\n").unwrap();
    assert_eq!(head.status, 299);
    assert_eq!(head.reason.as_deref(), Some(&b"Custom Thing"[..]));
    // CGI-style heads (SCGI) still parse the same way in the stream dialect.
    let (head, _) = parse_stream(b"Status: 404 Not Found\r\n\r\n").unwrap();
    assert_eq!(head.status, 404);
}

#[test]
fn a_status_line_is_never_a_local_redirect() {
    let (head, _) = parse_stream(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n").unwrap();
    assert_eq!(head.status, 302);
    assert!(!head.local_redirect);
    let (head, _) = parse_stream(b"Location: /elsewhere\r\n\r\n").unwrap();
    assert!(
        head.local_redirect,
        "a CGI-style head keeps RFC 3875 semantics"
    );
}

#[test]
fn hostile_status_lines_are_refused() {
    for bad in [
        &b"HTTP/1.1 200\rOK\r\n\r\n"[..],
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 20x OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nStatus: 404\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let err = parse_stream(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponseHead, "{bad:?}");
    }
}

#[test]
fn fastcgi_heads_refuse_a_status_line() {
    assert!(parse_all(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
}

#[test]
fn stream_heads_have_the_same_cap() {
    let mut p = HeadParser::with_dialect(64, Dialect::Stream);
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 100));
    let err = p.push(Bytes::from(big)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResponseHeadTooLarge);
}

#[test]
fn a_status_line_split_at_every_byte() {
    let input: &[u8] = b"HTTP/1.1 299 Odd One\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody";
    for cut in 0..input.len() {
        let mut p = HeadParser::with_dialect(1024, Dialect::Stream);
        let (head, body) = match p.push(Bytes::copy_from_slice(&input[..cut])).unwrap() {
            Some((head, rest)) => (head, [&rest[..], &input[cut..]].concat()),
            None => {
                let (head, rest) = p
                    .push(Bytes::copy_from_slice(&input[cut..]))
                    .unwrap()
                    .expect("complete");
                (head, rest.to_vec())
            }
        };
        assert_eq!(head.status, 299, "cut {cut}");
        assert_eq!(head.reason.as_deref(), Some(&b"Odd One"[..]), "cut {cut}");
        assert_eq!(
            head.headers.get_all("set-cookie").iter().count(),
            2,
            "cut {cut}"
        );
        assert_eq!(&body[..], b"body", "cut {cut}");
    }
}
