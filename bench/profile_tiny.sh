#!/usr/bin/env bash
# Instructions per tiny FastCGI GET (the `tiny` cell of bench/run.sh: 13 bytes from
# examples/bench_responder), our gateway against nginx, under callgrind. Counts, not
# timings, so it can run on a busy machine (counts still grow a little when the machine
# is loaded: fewer events per epoll_wait means more runtime work per request).
#
#   bench/profile_tiny.sh                    # ours and nginx, wrk -c16, 5 s after 2 s
#   bench/profile_tiny.sh --only ours        # just our gateway (after a change)
#   bench/profile_tiny.sh --keep DIR         # keep the callgrind files in DIR
#   bench/profile_tiny.sh --gateway PATH     # another gateway binary (a before/after pair)
#   bench/profile_tiny.sh --env 'K=V ...'    # environment for our gateway (allocator knobs)
#   CG_OPTS=--dump-instr=yes bench/profile_tiny.sh ...   # more callgrind options
#   bench/profile_tiny.sh --rss              # no callgrind: resident memory at start, peak
#                                            # (VmHWM) and 5 s after bursts of tiny GETs at
#                                            # c=256 and 10 MB GETs at c=64 (5 s each)
#
# Besides instructions per request it prints, per request, the calls to malloc (with
# calloc and realloc) and free, and the instructions spent in them and in memcpy/memmove
# (self cost), so an allocation saved shows up as such. Our gateway runs with
# --threads 1 --quiet and conns=256 as in bench/run.sh; nginx as one process
# (`master_process off`) with bench/run.sh's upstream keepalive. Loopback only, free
# ports; everything started here is stopped on exit.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
ONLY=""
KEEP=""
CONC=16
WARM=2
MEASURE=5
GATEWAY=""
GW_ENV=""
RSS=0
while (($#)); do
    case $1 in
        --only) ONLY=$2; shift ;;
        --keep) KEEP=$2; shift ;;
        --conc) CONC=$2; shift ;;
        --duration) MEASURE=$2; shift ;;
        --gateway) GATEWAY=$2; shift ;;
        --env) GW_ENV=$2; shift ;;
        --rss) RSS=1 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
log() { echo "profile_tiny: $*" >&2; }
for cmd in wrk nginx python3 curl valgrind callgrind_control; do
    command -v "$cmd" >/dev/null || { log "$cmd is missing"; exit 1; }
done
EX=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples
if [[ -z $GATEWAY ]]; then
    (cd "$ROOT" && cargo build --release --quiet --example gateway --example bench_responder)
    GATEWAY=$EX/gateway
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfcgi-tiny.XXXXXX")
mkdir -p "$TMP/nginx"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
    if [[ -n $KEEP ]]; then mkdir -p "$KEEP" && cp -f "$TMP"/cg.* "$KEEP"/ 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free ports; the responder may still lose its port to a connection's TIME_WAIT (it
# sets no SO_REUSEADDR), so it gets a few tries.
for attempt in 1 2 3 4 5; do
    read -r NGINX_PORT OURS_PORT RESP_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
    )
    setsid "$EX/bench_responder" --tcp "127.0.0.1:$RESP_PORT" --threads 1 >"$TMP/responder.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        grep -q listening "$TMP/responder.log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q listening "$TMP/responder.log"; then
        PIDS+=("$pid")
        break
    fi
    kill -TERM "$pid" 2>/dev/null || true
    ((attempt < 5)) || { log "the responder did not start"; cat "$TMP/responder.log" >&2; exit 1; }
done

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
    fastcgi_temp_path $TMP/nginx/ft;
    upstream responder {
        server 127.0.0.1:$RESP_PORT;
        keepalive 256;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location ^~ /r/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME /srv/responder\$fastcgi_script_name;
            fastcgi_pass responder;
            fastcgi_keep_conn on;
        }
    }
}
EOF

# start SYSTEM: nginx or our gateway under callgrind, in a process group of its own;
# sets STARTED to its pid and PORT to its port once it answers.
start() {
    local sys=$1 deadline
    # shellcheck disable=SC2086 # CG_OPTS is a list of valgrind options
    local cg=(valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$sys.%p" ${CG_OPTS:-})
    ((RSS == 0)) || cg=()
    if [[ $sys == nginx ]]; then
        PORT=$NGINX_PORT
        setsid "${cg[@]}" nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" >"$TMP/$sys.log" 2>&1 &
    else
        PORT=$OURS_PORT
        # shellcheck disable=SC2086 # GW_ENV is a list of K=V words
        setsid env $GW_ENV "${cg[@]}" "$GATEWAY" --threads 1 --quiet \
            --listen "127.0.0.1:$PORT" \
            --app "/r=tcp://127.0.0.1:$RESP_PORT,conns=256" >"$TMP/$sys.log" 2>&1 &
    fi
    STARTED=$!
    PIDS+=("$STARTED")
    deadline=$((SECONDS + 60))
    until [[ $(curl -s "http://127.0.0.1:$PORT/r/hello" 2>/dev/null) == "Hello, world!" ]]; do
        ((SECONDS < deadline)) || { log "$sys does not answer"; tail -n 3 "$TMP/$sys.log" "$TMP/responder.log" "$TMP/nginx/error.log" >&2; exit 1; }
        sleep 0.3
    done
}

# summarize FILE N: instructions, allocator calls and copy cost per request.
summarize() {
    python3 - "$1" "$2" <<'EOF'
import re, sys
path, n = sys.argv[1], int(sys.argv[2])
names, fn, cfn = {}, None, None
self_ir, calls = {}, {}
def name(tok):
    m = re.match(r"\((\d+)\)(?: (.*))?", tok)
    if not m:
        return tok
    if m.group(2):
        names[m.group(1)] = m.group(2)
    return names.get(m.group(1), tok)
total = 0
pending_call = False
npos = 1
for line in open(path):
    line = line.rstrip("\n")
    if line.startswith("positions:"):
        npos = len(line.split()) - 1; continue
    if line.startswith("fn="):
        fn = name(line[3:]); continue
    if line.startswith("cfn="):
        cfn = name(line[4:]); continue
    if line.startswith("calls="):
        calls[cfn] = calls.get(cfn, 0) + int(line[6:].split()[0]); pending_call = True; continue
    if line and (line[0].isdigit() or line[0] in "+-*"):
        parts = line.split()
        if len(parts) > npos:
            if pending_call:
                pending_call = False  # inclusive cost of the call, not self
            else:
                self_ir[fn] = self_ir.get(fn, 0) + int(parts[npos])
    elif line.startswith("summary:"):
        total = int(line.split()[1])
def pick(pat):
    return [k for k in set(self_ir) | set(calls) if re.search(pat, k)]
def per(xs, d):
    return sum(d.get(k, 0) for k in xs) / n
alloc = pick(r"^(malloc|calloc|realloc|__libc_malloc|__libc_calloc|__libc_realloc|_int_malloc|_int_realloc|malloc_consolidate|tcache\w*|je_\w*|_rjem_\w*|sdallocx)( |$)") \
    + pick(r"^(free|__libc_free|_int_free|cfree)( |$)")
mallocs = pick(r"^(malloc|calloc|realloc|_rjem_malloc|_rjem_calloc|_rjem_realloc|_rjem_mallocx|_rjem_rallocx)$")
frees = pick(r"^(free|_rjem_free|_rjem_sdallocx)$")
copies = pick(r"^(__)?mem(cpy|move)\w*")
print(f"{total // n} instructions/request; malloc calls {per(mallocs, calls):.1f}, free calls "
      f"{per(frees, calls):.1f}, allocator self {per(alloc, self_ir):.0f} Ir, memcpy/memmove self "
      f"{per(copies, self_ir):.0f} Ir")
EOF
}

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
if ((RSS == 1)); then
    for sys in ours nginx; do
        [[ -z $ONLY || $ONLY == "$sys" ]] || continue
        start "$sys"
        pid=$STARTED
        before=$(kib "$pid" VmRSS)
        wrk -t1 -c256 -d5s "http://127.0.0.1:$PORT/r/hello" >/dev/null
        wrk -t1 -c64 -d5s --timeout 10s "http://127.0.0.1:$PORT/r/big?10485760" >/dev/null
        sleep 5
        echo "- $sys: RSS at start $((before / 1024)) MiB, peak $(($(kib "$pid" VmHWM) / 1024)) MiB, 5 s after the bursts $(($(kib "$pid" VmRSS) / 1024)) MiB"
        kill -TERM -- "-$pid" 2>/dev/null || true
        sleep 1
    done
    exit 0
fi

for sys in ours nginx; do
    [[ -z $ONLY || $ONLY == "$sys" ]] || continue
    start "$sys"
    pid=$STARTED
    wrk -t1 -c"$CONC" -d"${WARM}s" "http://127.0.0.1:$PORT/r/hello" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    out=$(wrk -t1 -c"$CONC" -d"${MEASURE}s" "http://127.0.0.1:$PORT/r/hello")
    callgrind_control -d "$pid" >/dev/null
    sleep 1
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
    [[ -z $errors ]] || log "$sys: $errors"
    file=$(ls "$TMP"/cg."$sys".*.1 | head -1)
    echo "- $sys (c=$CONC, $n requests): $(summarize "$file" "$n")"
    kill -TERM -- "-$pid" 2>/dev/null || true
    sleep 1
done
