#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/seeds/<target>/: small, hand-made inputs in each
target's input layout (see the doc comment of each fuzz target), shaped like what real
backends send (php-fpm's STDOUT with its X-Powered-By head, flup's padding, fcgiwrap's
STDERR). Deterministic: running it again rewrites the same files.

    python3 fuzz/seeds/generate.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def record(rtype, rid, content=b"", pad=None):
    if pad is None:
        pad = -len(content) % 8
    return struct.pack(">BBHHBB", 1, rtype, rid, len(content), pad, 0) + content + b"\0" * pad


def pair(name, value):
    def ln(n):
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
    return ln(len(name)) + ln(len(value)) + name + value


STDOUT, STDERR, END, PARAMS, GVR, UNKNOWN = 6, 7, 3, 4, 10, 11
end_ok = record(END, 1, struct.pack(">IB3x", 0, 0))
php_head = b"X-Powered-By: PHP/8.2\r\nContent-type: text/html; charset=UTF-8\r\n\r\n"

streams = {
    "php_hello": record(STDOUT, 1, php_head + b"hello") + record(STDOUT, 1) + end_ok,
    "stderr_then_stdout": record(STDERR, 1, b"PHP Notice: x") + record(STDERR, 1)
    + record(STDOUT, 1, b"Status: 404\n\n") + record(STDOUT, 1) + end_ok,
    "flup_padding": record(STDOUT, 1, b"Content-Type: text/plain\r\n\r\nok", pad=6) + end_ok,
    "big_record": record(STDOUT, 1, b"x" * 4000) + end_ok,
    "values_result": record(GVR, 0, pair(b"FCGI_MPXS_CONNS", b"0") + pair(b"FCGI_MAX_REQS", b"5")),
    "unknown_type": record(UNKNOWN, 0, bytes([200]) + b"\0" * 7),
    "two_requests": record(STDOUT, 1, b"a") + record(STDOUT, 2, b"b") + end_ok
    + record(END, 2, struct.pack(">IB3x", 1, 2)),
    "overloaded": record(END, 1, struct.pack(">IB3x", 0, 2)),
    "bad_version": b"\x02" + record(STDOUT, 1, b"x")[1:],
    "truncated": record(STDOUT, 1, b"abcdefgh")[:11],
    "mgmt_with_id": record(GVR, 3, b""),
    "app_with_id0": record(STDOUT, 0, b"x"),
}
plans = [b"", b"\x00", b"\x07\x01", b"\x80", b"\x03\x05\x7f", b"\x00\x01\x02\x03\x04\x05\x06"]


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


for i, (name, wire) in enumerate(streams.items()):
    for j, plan in enumerate(plans[: 1 + (i % 3)]):
        write("decoder", f"{name}-{j}", bytes([len(plan)]) + plan + wire)

env = [
    (b"SCRIPT_FILENAME", b"/var/www/html/index.php"),
    (b"QUERY_STRING", b"id=1&x=%20"),
    (b"REQUEST_METHOD", b"POST"),
    (b"HTTP_COOKIE", b"a" * 300),
    (b"EMPTY", b""),
    (b"N" * 130, b"v"),
    (b"NUL", b"a\0b"),
]
for limit in (0, 4, 255):
    for piece in (0, 7, 63):
        body = b"".join(pair(n, v) for n, v in env[(limit + piece) % 4:])
        write("params", f"env-{limit}-{piece}", bytes([limit, piece]) + body)
write("params", "truncated-long", b"\xff\x01" + b"\x80\x00\x01\x00\x05abc")
write("params", "empty", b"\x10\x10")

heads = {
    "php": php_head + b"<html>",
    "status_reason": b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope",
    "custom_reason": b"Status: 299 Custom Thing\n\nbody",
    "local_redirect": b"Location: /other?x=1\n\n",
    "client_redirect": b"Location: https://example.com/\nStatus: 301\n\n",
    "content_length": b"Content-Length: 5\nContent-Type: text/plain\n\nhello",
    "cl_list": b"Content-Length: 3, 3\n\nabc",
    "cl_conflict": b"Content-Length: 3\nContent-Length: 4\n\nabcd",
    "te_chunked": b"Transfer-Encoding: chunked\nContent-Length: 9\n\n5\r\nhello\r\n0\r\n\r\n",
    "connection_tokens": b"Connection: close, X-Drop\nX-Drop: 1\nX-Keep: 2\nKeep-Alive: 5\n\n",
    "no_content": b"Status: 204\nContent-Length: 10\n\n",
    "two_status": b"Status: 200\nStatus: 500\n\n",
    "bad_status": b"Status: 99 Low\n\n",
    "empty_head": b"\r\nbody",
    "obs_text": b"X-Name: caf\xc3\xa9 \t\n\n",
    "bare_cr": b"X-A: 1\rX-B: 2\n\n",
    "set_cookies": b"Set-Cookie: a=1\nSet-Cookie: b=2\nVary: Accept\n\n",
    "no_end": b"Content-Type: text/html\nX-Long: " + b"y" * 200,
}
for i, (name, head) in enumerate(heads.items()):
    cuts = bytes([3, 17, 40][: i % 4])
    cap = 255 if i % 5 else 2
    write("head", name, bytes([cap, len(cuts)]) + cuts + head)

# SCGI/uwsgi response streams (the stream dialect): status lines as uWSGI writes them,
# CGI-style heads as flup's SCGI server writes them, and hostile ones.
stream_heads = {
    "uwsgi_ok": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    "uwsgi_404": b"HTTP/1.0 404 Not Found\r\n\r\n",
    "scgi_status": b"Status: 302 Found\r\nLocation: https://example.com/\r\n\r\n",
    "scgi_plain": b"Content-Type: text/html\r\n\r\n<html>",
    "status_line_and_field": b"HTTP/1.1 200 OK\r\nStatus: 500\r\n\r\n",
    "bad_version": b"HTTP/2 200 OK\r\n\r\n",
    "cr_in_line": b"HTTP/1.1 200 O\rK\r\n\r\n",
    "te": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "no_end": b"HTTP/1.1 200 OK\r\nX-Long: " + b"z" * 300,
}
for i, (name, wire) in enumerate(stream_heads.items()):
    cuts = bytes([0, 5, 1, 40][: i % 5])
    write("stream_head", name, bytes([len(cuts)]) + cuts + wire)

# Authorizer answers (authorizer_head): a grant with variables, a denial with a body,
# a redirect, hostile variable fields.
authorizer_heads = {
    "grant_vars": b"Status: 200\r\nVariable-REMOTE_USER: alice\r\nVariable-ROLE: admin\r\n\r\n",
    "deny": b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno",
    "redirect": b"Status: 302\r\nLocation: https://login.example/\r\n\r\n",
    "empty_var": b"Status: 200\r\nVariable-: x\r\nVariable-A:\r\n\r\n",
    "no_status": b"Variable-X: 1\r\nX-Other: 2\r\n\r\n",
}
for i, (name, wire) in enumerate(authorizer_heads.items()):
    cuts = bytes([2, 9, 0][: i % 4])
    write("authorizer_head", name, bytes([len(cuts)]) + cuts + wire)

# Multiplexed answers (demux): streams 1..3 interleaved the way Go's net/http/fcgi and
# tokio-fastcgi write them, an abort answered twice, a record for an id not in use.
def end(rid, app=0, proto=0):
    return record(END, rid, struct.pack(">IB3x", app, proto))

demux_wires = {
    "interleaved": record(STDOUT, 1, b"Status: 200\r\n\r\na") + record(STDOUT, 2, b"b" * 100)
    + record(STDOUT, 3, b"c") + record(STDOUT, 1) + end(1) + record(STDERR, 2, b"warn")
    + record(STDOUT, 2) + end(2) + record(STDOUT, 3) + end(3),
    "values_then_streams": record(GVR, 0, pair(b"FCGI_MPXS_CONNS", b"1")) + record(GVR, 0)
    + record(STDOUT, 1, b"x") + end(1),
    "double_end": end(1) + record(STDOUT, 1, b"late") + end(1),
    "unknown_id": record(STDOUT, 9, b"who"),
    "over_budget": record(STDOUT, 1, b"y" * 3000) + record(STDOUT, 1, b"y" * 3000) + end(1),
    "cant_mpx": end(2, 0, 1) + record(STDOUT, 1, b"ok") + end(1),
}
for i, (name, wire) in enumerate(demux_wires.items()):
    cuts = bytes([7, 0, 33][: i % 4])
    config = (len(cuts) << 4) | (2 + i % 3)
    write("demux", name, bytes([config, 4 + i]) + cuts + wire)
