#!/usr/bin/env bash
# SCGI and uwsgi: our gateway's --scgi / --uwsgi mounts against nginx scgi_pass /
# uwsgi_pass, both in front of the same uWSGI (one instance, one WSGI app that answers
# 13 bytes, listening with --scgi-socket and --uwsgi-socket). wrk drives each system in
# turn (ABAB), and the CPU time each gateway's processes used is read from /proc.
# Neither side keeps backend connections: both protocols end a response by closing.
#
#   bench/connectors.sh                      # c=16 and 64, 2 reps of 5 s
#   bench/connectors.sh --conc 16 --reps 3 --duration 5
#   bench/connectors.sh --conns 4            # our mounts at their default cap
#
# --conns N is our mounts' `conns=` (connections in flight per backend; more requests
# queue in the gateway). The default, 1024, leaves them uncapped like nginx's upstream
# (no `max_conns`), so both queue in uWSGI's listen backlog; the gateway's own default
# is 4. nginx runs one worker, our gateway one thread (a current-thread runtime).
#
# Loopback only, free ports; everything started here is stopped on exit.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
CONC=16,64
REPS=2
DURATION=5
BUILD=1
PROCESSES=2
CONNS=1024

while (($#)); do
    case $1 in
        --conc) CONC=$2; shift ;;
        --reps) REPS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --processes) PROCESSES=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "connectors: $*" >&2; }
die() { log "$*"; exit 1; }
for cmd in wrk nginx uwsgi python3 curl; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (apt-get install wrk nginx-light uwsgi-core uwsgi-plugin-python3 curl)"
done

EX=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release --quiet --example gateway)
fi
[[ -x $EX/gateway ]] || die "$EX/gateway is missing (run without --no-build)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfcgi-conn.XXXXXX")
OUT=$BENCH_DIR/results/connectors-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT" "$TMP/nginx"
PGIDS=()
cleanup() {
    local rc=$? g
    trap - EXIT INT TERM
    for g in "${PGIDS[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    sleep 0.5
    for g in "${PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    cp -f "$TMP"/*.log "$TMP"/nginx/error.log "$OUT/" 2>/dev/null || true
    rm -rf "$TMP"
    log "results in $OUT (exit $rc)"
    exit "$rc"
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

# Started with setsid: each in a process group of its own, stopped as a group.
setsid uwsgi --plugin python3 --wsgi-file "$TMP/app.py" --callable app --master \
    --processes "$PROCESSES" --disable-logging --listen 1024 \
    --scgi-socket "127.0.0.1:$SCGI_PORT" --uwsgi-socket "127.0.0.1:$UWSGI_PORT" \
    >"$TMP/uwsgi.log" 2>&1 &
PGIDS+=("$!")

cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/cbt;
    fastcgi_temp_path $TMP/nginx/ft;
    proxy_temp_path $TMP/nginx/pt;
    uwsgi_temp_path $TMP/nginx/ut;
    scgi_temp_path $TMP/nginx/st;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location /s/ { include /etc/nginx/scgi_params; scgi_pass 127.0.0.1:$SCGI_PORT; }
        location /u/ { include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:$UWSGI_PORT; }
    }
}
EOF
setsid nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" >"$TMP/nginx.log" 2>&1 &
NGINX_PGID=$!
PGIDS+=("$NGINX_PGID")
setsid "$EX/gateway" --threads 1 --quiet --listen "127.0.0.1:$OURS_PORT" \
    --scgi "/s=tcp://127.0.0.1:$SCGI_PORT,conns=$CONNS" \
    --uwsgi "/u=tcp://127.0.0.1:$UWSGI_PORT,conns=$CONNS" \
    >"$TMP/gateway.log" 2>&1 &
OURS_PGID=$!
PGIDS+=("$OURS_PGID")

wait_up() {
    local deadline=$((SECONDS + 15))
    until [[ $(curl -s "$1" 2>/dev/null) == "Hello, world!" ]]; do
        ((SECONDS < deadline)) || die "$1 does not answer (logs in $OUT)"
        sleep 0.2
    done
}
for port in "$NGINX_PORT" "$OURS_PORT"; do
    wait_up "http://127.0.0.1:$port/s/x"
    wait_up "http://127.0.0.1:$port/u/x"
done

# CPU ticks (user + system) of every process in a process group.
ticks() {
    local total=0 pid stat
    for pid in $(pgrep -g "$1"); do
        stat=$(cut -d')' -f2 "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a f <<<"$stat"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

echo "conns=$CONNS processes=$PROCESSES duration=$DURATION reps=$REPS" >"$OUT/settings"
printf 'proto\tc\trep\tsystem\trps\tcpu_us_per_req\terrors\n' >"$OUT/results.tsv"
for conc in ${CONC//,/ }; do
    for rep in $(seq "$REPS"); do
        order=(ours nginx)
        ((rep % 2 == 0)) && order=(nginx ours)
        for proto in s u; do
            for sys in "${order[@]}"; do
                port=$OURS_PORT pg=$OURS_PGID
                [[ $sys == nginx ]] && port=$NGINX_PORT pg=$NGINX_PGID
                url="http://127.0.0.1:$port/$proto/x"
                wrk -t1 -c"$conc" -d1s "$url" >/dev/null 2>&1 || true
                before=$(ticks "$pg")
                res=$(wrk -t1 -c"$conc" -d"${DURATION}s" --timeout 10s "$url" 2>&1)
                after=$(ticks "$pg")
                reqs=$(awk '/requests in/ {print $1}' <<<"$res")
                errs=$(awk '/Non-2xx|Socket errors/ {n++} END {print n+0}' <<<"$res")
                rps=$(python3 -c "print(f'{$reqs / $DURATION:.0f}')")
                cpu=$(python3 -c "print(f'{($after - $before) / $HZ * 1e6 / max($reqs, 1):.1f}')")
                name=scgi
                [[ $proto == u ]] && name=uwsgi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conc" "$rep" "$sys" "$rps" "$cpu" "$errs" >>"$OUT/results.tsv"
                log "$name c=$conc rep $rep $sys: $rps rps, $cpu µs CPU/request, error lines $errs"
            done
        done
    done
done

python3 - "$OUT/results.tsv" <<'EOF' | tee "$OUT/report.md"
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
cells = collections.defaultdict(lambda: collections.defaultdict(list))
for proto, c, rep, system, rps, cpu, errs in rows:
    cells[(proto, int(c))][system].append((float(rps), float(cpu), int(errs)))
print("| protocol | c | rps ours/nginx | CPU per request ours/nginx | ours µs/req | nginx µs/req | error lines |")
print("|---|---:|---:|---:|---:|---:|---:|")
for (proto, c), by in sorted(cells.items()):
    o, n = by["ours"], by["nginx"]
    rps_o = statistics.median(r for r, _, _ in o); rps_n = statistics.median(r for r, _, _ in n)
    cpu_o = statistics.median(x for _, x, _ in o); cpu_n = statistics.median(x for _, x, _ in n)
    errs = sum(e for *_, e in o) + sum(e for *_, e in n)
    print(f"| {proto} | {c} | {rps_o / rps_n:.2f} | {cpu_o / cpu_n:.2f} | {cpu_o:.1f} | {cpu_n:.1f} | {errs} |")
EOF
