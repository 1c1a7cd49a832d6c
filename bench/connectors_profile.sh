#!/usr/bin/env bash
# The per-request profile behind bench/connectors.sh: system calls (strace -c) and
# user-space instructions (callgrind) per request, our gateway against nginx, on the
# same uWSGI (the WSGI app that answers 13 bytes). Counts, not timings, so it can run on
# a busy machine (instruction counts still grow a little there: fewer events per
# epoll_wait means more runtime work per request).
#
#   bench/connectors_profile.sh                 # syscalls, SCGI and uwsgi, c=16
#   bench/connectors_profile.sh --callgrind     # and instructions (valgrind, slower)
#
# nginx runs as one process (`master_process off; daemon off;`, one worker), our
# gateway with --threads 1 and conns=1024, as in bench/connectors.sh. Loopback only,
# free ports; everything started here is stopped on exit.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
CALLGRIND=0
CONC=16
CONNS=1024
while (($#)); do
    case $1 in
        --callgrind) CALLGRIND=1 ;;
        --conc) CONC=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
log() { echo "connectors_profile: $*" >&2; }
for cmd in wrk nginx uwsgi strace python3 curl; do
    command -v "$cmd" >/dev/null || { log "$cmd is missing"; exit 1; }
done
((CALLGRIND == 0)) || command -v valgrind >/dev/null || { log "valgrind is missing"; exit 1; }
(cd "$ROOT" && cargo build --release --quiet --example gateway)
GATEWAY=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/gateway

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfcgi-prof.XXXXXX")
mkdir -p "$TMP/nginx"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r NGINX_PORT OURS_PORT SCGI_PORT UWSGI_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
cat >"$TMP/app.py" <<'EOF'
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]
EOF
setsid uwsgi --plugin python3 --wsgi-file "$TMP/app.py" --callable app --master \
    --processes 2 --disable-logging --listen 1024 \
    --scgi-socket "127.0.0.1:$SCGI_PORT" --uwsgi-socket "127.0.0.1:$UWSGI_PORT" \
    >"$TMP/uwsgi.log" 2>&1 &
PIDS+=("$!")
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/cbt;
    uwsgi_temp_path $TMP/nginx/ut;
    scgi_temp_path $TMP/nginx/st;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location /s/ { include /etc/nginx/scgi_params; scgi_pass 127.0.0.1:$SCGI_PORT; }
        location /u/ { include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:$UWSGI_PORT; }
    }
}
EOF

# start SYSTEM [WRAPPER...]: starts nginx or the gateway (under WRAPPER) in a process
# group of its own; sets STARTED to its pid once it answers.
start() {
    local sys=$1 port pid deadline
    shift
    if [[ $sys == nginx ]]; then
        port=$NGINX_PORT
        setsid "$@" nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" >"$TMP/$sys.log" 2>&1 &
    else
        port=$OURS_PORT
        setsid "$@" "$GATEWAY" --threads 1 --quiet --listen "127.0.0.1:$port" \
            --scgi "/s=tcp://127.0.0.1:$SCGI_PORT,conns=$CONNS" \
            --uwsgi "/u=tcp://127.0.0.1:$UWSGI_PORT,conns=$CONNS" >"$TMP/$sys.log" 2>&1 &
    fi
    pid=$!
    PIDS+=("$pid")
    STARTED=$pid
    deadline=$((SECONDS + 60))
    until [[ $(curl -s "http://127.0.0.1:$port/s/x" 2>/dev/null) == "Hello, world!" ]]; do
        ((SECONDS < deadline)) || { log "$sys does not answer"; exit 1; }
        sleep 0.3
    done
}
stop() { kill -TERM -- "-$1" 2>/dev/null || true; sleep 1; }
url() { [[ $1 == nginx ]] && echo "http://127.0.0.1:$NGINX_PORT/$2/x" || echo "http://127.0.0.1:$OURS_PORT/$2/x"; }
requests() { awk '/requests in/ {print $1}'; }

echo "## System calls per request (strace -c -f, wrk -c$CONC, 3 s)"
for sys in ours nginx; do
    start "$sys"
    pid=$STARTED
    for proto in s u; do
        wrk -t1 -c"$CONC" -d1s "$(url "$sys" "$proto")" >/dev/null
        strace -f -c -p "$pid" -o "$TMP/strace" 2>/dev/null &
        tracer=$!
        sleep 0.5
        n=$(wrk -t1 -c"$CONC" -d3s "$(url "$sys" "$proto")" | requests)
        kill -INT "$tracer"
        wait "$tracer" 2>/dev/null || true
        name=scgi
        [[ $proto == u ]] && name=uwsgi
        python3 - "$TMP/strace" "$n" "$sys" "$name" <<'EOF'
import sys
path, n, system, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
calls = {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = int(f[3])
per = sorted(((c / n, name) for name, c in calls.items() if c / n >= 0.05), reverse=True)
total = sum(c for c in calls.values()) / n
print(f"- {system} {proto}: {total:.1f} per request: " + ", ".join(f"{name} {v:.2f}" for v, name in per))
EOF
    done
    stop "$pid"
done

((CALLGRIND == 1)) || exit 0
echo
echo "## User-space instructions per request (callgrind, wrk -c$CONC, 5 s after 2 s warm-up)"
for sys in ours nginx; do
    for proto in s u; do
        start "$sys" valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$sys.$proto.%p"
        pid=$STARTED
        wrk -t1 -c"$CONC" -d2s "$(url "$sys" "$proto")" >/dev/null
        callgrind_control -z "$pid" >/dev/null
        n=$(wrk -t1 -c"$CONC" -d5s "$(url "$sys" "$proto")" | requests)
        callgrind_control -d "$pid" >/dev/null
        sleep 1
        ir=$(awk '/^summary:/ {print $2}' "$TMP"/cg."$sys.$proto".*.1)
        name=scgi
        [[ $proto == u ]] && name=uwsgi
        echo "- $sys $name: $((ir / n)) instructions per request ($n requests)"
        stop "$pid"
    done
done
