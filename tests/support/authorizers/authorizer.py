"""A FastCGI authorizer on flup (WSGIServer with roles=(FCGI_AUTHORIZER,)), for
tests/authorize.rs. Usage: authorizer.py unix:PATH. The decision table is the same in
authorizer.pl and the tokio-fastcgi authorizer (tests/support/authorizers/mod.rs)."""
import sys

from flup.server.fcgi import WSGIServer
from flup.server.fcgi_base import FCGI_AUTHORIZER


def seen(environ):
    # What the gateway sent, so a refusal shows the test the authorizer's environment
    # (as received: flup's WSGI layer fills in SCRIPT_NAME and PATH_INFO later).
    raw = environ["test.raw_names"]

    def has(name):
        return "yes" if name in raw else "no"
    return "role=%s;cl=%s;sn=%s;pi=%s;uri=%s;auth=%s" % (
        environ.get("FCGI_ROLE", "-"), has("CONTENT_LENGTH"), has("SCRIPT_NAME"),
        has("PATH_INFO"), environ.get("REQUEST_URI", "-"),
        environ.get("HTTP_AUTHORIZATION", "-"))


def app(environ, start_response):
    if environ.get("HTTP_AUTHORIZATION") == "Bearer good":
        start_response("200 OK", [
            ("Variable-AUTH_USER", "alice"),
            ("Variable-X-Team", "ops"),
            ("Variable-SCRIPT_FILENAME", "/etc/passwd"),
            ("X-Authorizer-Only", "leak"),
        ])
        return [b"the body of an allow, never seen"]
    start_response("401 Unauthorized", [
        ("WWW-Authenticate", 'Bearer realm="test"'),
        ("X-Seen", seen(environ)),
        ("Variable-AUTH_USER", "leak"),
        ("Content-Type", "text/plain"),
    ])
    return [("denied " + environ.get("REQUEST_URI", "-")).encode("latin-1")]


class RecordingServer(WSGIServer):
    """Notes which variables the gateway sent before flup adds the WSGI defaults."""

    def _sanitizeEnv(self, environ):
        environ["test.raw_names"] = frozenset(environ)
        super()._sanitizeEnv(environ)


if __name__ == "__main__":
    path = sys.argv[1].split(":", 1)[1]
    RecordingServer(app, bindAddress=path, roles=(FCGI_AUTHORIZER,),
               minSpare=8, maxSpare=16).run()
