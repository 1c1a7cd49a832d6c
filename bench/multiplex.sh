#!/usr/bin/env bash
# Multiplexing: our gateway on a multiplexing backend against nginx on the same one.
# The backend is examples/bench_responder with `--mpx`: it answers FCGI_GET_VALUES with
# FCGI_MPXS_CONNS=1 and runs every request of a connection at once. Our gateway's mount
# (`mpx=auto`, the default) learns that and puts up to 100 requests on each of at most 4
# connections; nginx, which never multiplexes, keeps one kept-alive connection per
# concurrent request (`fastcgi_keep_conn on`, an idle cache of 1024). A third system is
# our gateway with `mpx=off,conns=1024` (one request per connection, like nginx).
# wrk drives each in turn (ABAB), tiny GETs (13 bytes); CPU of each gateway's process
# group comes from /proc, backend connections from `ss` in the middle of each run.
# Then the memory cell: 1,000 slow requests (`sleep=300`) at once on ONE connection
# (`conns=1`, the backend advertising FCGI_MAX_REQS=1000), against nginx's 1,000
# connections: peak RSS of each gateway.
#
#   bench/multiplex.sh                     # c=64 and 256, 2 reps of 5 s (~3 min)
#   bench/multiplex.sh --conc 64 --reps 3 --duration 5
#
# Loopback only, free ports; everything started here is stopped on exit.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
CONC=64,256
REPS=2
DURATION=5
BUILD=1

while (($#)); do
    case $1 in
        --conc) CONC=$2; shift ;;
        --reps) REPS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "multiplex: $*" >&2; }
die() { log "$*"; exit 1; }
for cmd in wrk nginx python3 curl ss; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (apt-get install wrk nginx-light curl iproute2)"
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

EX=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release --quiet --example gateway --example bench_responder)
fi
for bin in gateway bench_responder; do
    [[ -x $EX/$bin ]] || die "$EX/$bin is missing (run without --no-build)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfcgi-mpx.XXXXXX")
OUT=$BENCH_DIR/results/multiplex-$(date +%Y%m%d-%H%M%S)
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

read -r NGINX_PORT OURS_PORT OFF_PORT ONE_PORT BACKEND_PORT BIG_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)

# Each started with setsid: a process group of its own, stopped as a group. Not in a
# command substitution: that subshell would keep PGIDS to itself and the cleanup would
# stop nothing. The group's id is left in STARTED.
STARTED=
start() {
    local name=$1
    shift
    setsid "$@" >"$TMP/$name.log" 2>&1 &
    STARTED=$!
    PGIDS+=("$STARTED")
}
start responder "$EX/bench_responder" --tcp "127.0.0.1:$BACKEND_PORT" --mpx 100
BACKEND_PGID=$STARTED
# The memory cell's backend: 1,000 requests on one connection.
start responder-1000 "$EX/bench_responder" --tcp "127.0.0.1:$BIG_PORT" --mpx 1000
BIG_PGID=$STARTED

cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/cbt;
    fastcgi_temp_path $TMP/nginx/ft;
    proxy_temp_path $TMP/nginx/pt;
    uwsgi_temp_path $TMP/nginx/ut;
    scgi_temp_path $TMP/nginx/st;
    upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 1024; keepalive_requests 1000000; }
    upstream big { server 127.0.0.1:$BIG_PORT; keepalive 1024; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME /app;
            fastcgi_keep_conn on;
            fastcgi_pass backend;
        }
        location /big/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME /app;
            fastcgi_keep_conn on;
            fastcgi_pass big;
        }
    }
}
EOF
start nginx nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log"
NGINX_PGID=$STARTED
start gateway "$EX/gateway" --threads 1 --quiet --listen "127.0.0.1:$OURS_PORT" \
    --app "/=tcp://127.0.0.1:$BACKEND_PORT,mpx=auto,script=/app"
OURS_PGID=$STARTED
start gateway-off "$EX/gateway" --threads 1 --quiet --listen "127.0.0.1:$OFF_PORT" \
    --app "/=tcp://127.0.0.1:$BACKEND_PORT,mpx=off,conns=1024,script=/app"
OFF_PGID=$STARTED
start gateway-one "$EX/gateway" --threads 1 --quiet --listen "127.0.0.1:$ONE_PORT" \
    --app "/big=tcp://127.0.0.1:$BIG_PORT,mpx=auto,conns=1,script=/app"
ONE_PGID=$STARTED

wait_up() {
    local deadline=$((SECONDS + 15))
    until [[ $(curl -s "$1" 2>/dev/null) == "Hello, world!" ]]; do
        ((SECONDS < deadline)) || die "$1 does not answer (logs in $OUT)"
        sleep 0.2
    done
}
for port in "$NGINX_PORT" "$OURS_PORT" "$OFF_PORT"; do wait_up "http://127.0.0.1:$port/x"; done
wait_up "http://127.0.0.1:$NGINX_PORT/big/x"
wait_up "http://127.0.0.1:$ONE_PORT/big/x"

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
# Established connections from a process group's processes to a port.
conns_to() {
    local port=$1 pg=$2 n=0 pid
    for pid in $(pgrep -g "$pg"); do
        n=$((n + $(ss -Htnp state established "( dport = :$port )" 2>/dev/null | grep -c "pid=$pid," || true)))
    done
    echo "$n"
}
# Peak resident memory (VmHWM, KiB) of a process group's largest process.
hwm() {
    local best=0 pid v
    for pid in $(pgrep -g "$1"); do
        v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        ((v > best)) && best=$v
    done
    echo "$best"
}
HZ=$(getconf CLK_TCK)

echo "conc=$CONC duration=$DURATION reps=$REPS" >"$OUT/settings"
printf 'c\trep\tsystem\trps\tcpu_us_per_req\tbackend_conns\terrors\n' >"$OUT/results.tsv"
for conc in ${CONC//,/ }; do
    for rep in $(seq "$REPS"); do
        order=(ours nginx off)
        ((rep % 2 == 0)) && order=(off nginx ours)
        for sys in "${order[@]}"; do
            case $sys in
                ours) port=$OURS_PORT pg=$OURS_PGID ;;
                off) port=$OFF_PORT pg=$OFF_PGID ;;
                nginx) port=$NGINX_PORT pg=$NGINX_PGID ;;
            esac
            url="http://127.0.0.1:$port/x"
            wrk -t1 -c"$conc" -d1s "$url" >/dev/null 2>&1 || true
            before=$(ticks "$pg")
            wrk -t1 -c"$conc" -d"${DURATION}s" --timeout 10s "$url" >"$TMP/wrk.out" 2>&1 &
            wrk_pid=$!
            sleep "$(python3 -c "print($DURATION / 2)")"
            bconns=$(conns_to "$BACKEND_PORT" "$pg")
            wait "$wrk_pid" || true
            after=$(ticks "$pg")
            res=$(cat "$TMP/wrk.out")
            reqs=$(awk '/requests in/ {print $1}' <<<"$res")
            errs=$(awk '/Non-2xx|Socket errors/ {n++} END {print n+0}' <<<"$res")
            rps=$(python3 -c "print(f'{$reqs / $DURATION:.0f}')")
            cpu=$(python3 -c "print(f'{($after - $before) / $HZ * 1e6 / max($reqs, 1):.1f}')")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conc" "$rep" "$sys" "$rps" "$cpu" "$bconns" "$errs" >>"$OUT/results.tsv"
            log "c=$conc rep $rep $sys: $rps rps, $cpu µs CPU/request, $bconns backend connections, error lines $errs"
        done
    done
done

# The memory cell: 1,000 requests held open 300 ms each, on one connection (ours) or
# 1,000 (nginx).
printf 'system\tpeak_rss_kib_before\tpeak_rss_kib\tbackend_conns\trps\terrors\n' >"$OUT/memory.tsv"
for sys in ours nginx; do
    port=$ONE_PORT pg=$ONE_PGID
    [[ $sys == nginx ]] && port=$NGINX_PORT pg=$NGINX_PGID
    base=$(hwm "$pg")
    wrk -t1 -c1000 -d"${DURATION}s" --timeout 10s "http://127.0.0.1:$port/big/x?sleep=300" >"$TMP/wrk.out" 2>&1 &
    wrk_pid=$!
    sleep "$(python3 -c "print($DURATION / 2)")"
    bconns=$(conns_to "$BIG_PORT" "$pg")
    wait "$wrk_pid" || true
    res=$(cat "$TMP/wrk.out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$res")
    errs=$(awk '/Non-2xx|Socket errors/ {n++} END {print n+0}' <<<"$res")
    rps=$(python3 -c "print(f'{$reqs / $DURATION:.0f}')")
    peak=$(hwm "$pg")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$base" "$peak" "$bconns" "$rps" "$errs" >>"$OUT/memory.tsv"
    log "1,000 streams, $sys: peak RSS $base -> $peak KiB, $bconns backend connections, $rps rps, error lines $errs"
done
kill -USR1 -- "-$BIG_PGID" 2>/dev/null || true
kill -USR1 -- "-$BACKEND_PGID" 2>/dev/null || true
sleep 0.3

python3 - "$OUT/results.tsv" "$OUT/memory.tsv" <<'EOF' | tee "$OUT/report.md"
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
cells = collections.defaultdict(lambda: collections.defaultdict(list))
for c, rep, system, rps, cpu, conns, errs in rows:
    cells[int(c)][system].append((float(rps), float(cpu), int(conns), int(errs)))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print("| c | rps ours/nginx | CPU per request ours/nginx | ours µs/req | nginx µs/req | off µs/req | backend conns ours / nginx / off | error lines |")
print("|---:|---:|---:|---:|---:|---:|---|---:|")
for c, by in sorted(cells.items()):
    o, n, f = by["ours"], by["nginx"], by["off"]
    errs = sum(x[3] for s in (o, n, f) for x in s)
    print(f"| {c} | {med(o, 0) / med(n, 0):.2f} | {med(o, 1) / med(n, 1):.2f} | {med(o, 1):.1f} | {med(n, 1):.1f} | {med(f, 1):.1f} | {max(x[2] for x in o)} / {max(x[2] for x in n)} / {max(x[2] for x in f)} | {errs} |")
print()
print("| 1,000 streams | peak RSS before → during (KiB) | backend connections | rps | error lines |")
print("|---|---|---:|---:|---:|")
for line in list(open(sys.argv[2]))[1:]:
    system, base, peak, conns, rps, errs = line.split()
    print(f"| {system} | {base} → {peak} | {conns} | {rps} | {errs} |")
EOF
grep -h "bench_responder:" "$TMP"/responder*.log | tee -a "$OUT/report.md" || true
