"""A FastCGI filter on flup, for tests/filter.rs: FCGI_DATA upper-cased (ASCII) back,
read and written 64 KiB at a time. flup receives FCGI_DATA but gives WSGI applications
no way to read it, so this overrides flup's lower-level handler. Usage: filter.py PATH"""
import sys

from flup.server.fcgi import WSGIServer
from flup.server.fcgi_base import FCGI_FILTER, FCGI_REQUEST_COMPLETE, FCGI_UNKNOWN_ROLE


class UpperFilter(WSGIServer):
    def handler(self, req):
        if req.role != FCGI_FILTER:
            return FCGI_UNKNOWN_ROLE, 0
        env = req.params
        stdin = req.stdin.read()
        head = (
            "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n"
            "X-Data-Length: %s\r\nX-Data-Last-Mod: %s\r\nX-Script-Name: %s\r\n"
            "X-Script-Filename: %s\r\nX-Role: %s\r\nX-Stdin: %s\r\n\r\n"
            % (env.get("FCGI_DATA_LENGTH", "-"), env.get("FCGI_DATA_LAST_MOD", "-"),
               env.get("SCRIPT_NAME", "-"), env.get("SCRIPT_FILENAME", "-"),
               env.get("FCGI_ROLE", "-"), stdin.decode("latin-1")))
        req.stdout.write(head.encode("latin-1"))
        while True:
            chunk = req.data.read(65536)
            if not chunk:
                break
            req.stdout.write(chunk.upper())
        return FCGI_REQUEST_COMPLETE, 0


if __name__ == "__main__":
    UpperFilter(None, bindAddress=sys.argv[1], minSpare=4, maxSpare=8).run()
