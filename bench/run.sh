#!/usr/bin/env bash
# End-to-end benchmark: our gateway (examples/gateway) against nginx, both in front of the
# same FastCGI backends (the bench responder over TCP, php-fpm over unix sockets), driven
# by wrk in ABBA order, plus the "direct" ceiling (fcgi_load, no HTTP). See BENCHMARKS.md.
#
#   bench/run.sh                 # default: 2 repetitions, 3 s runs, ~15 min
#   bench/run.sh --quick         # smoke run, ~1.5 min
#   bench/run.sh --reps 3 --duration 5
#
# Results: bench/results/<timestamp>/{report.md,results.jsonl,env.json,logs/}.
# Everything listens on 127.0.0.1 (free ports) or unix sockets in a temp dir, and every
# process started here is stopped on exit, Ctrl-C included.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")

REPS=""
DURATION=""
WARMUP=""
QUICK=0
BACKENDS=responder,php
SCENARIOS=tiny,64k,10m,post1m
CONC=""
FLEET_CONC=64
PHP_CHILDREN=8
PHP_CONC=""
RESPONDER_CONNS=256
MAX_CONC_10M=64
GW_THREADS=1
# The gateway's production build: jemalloc with background purge (examples/support/alloc.rs;
# BENCHMARKS.md "The tiny GET, instruction by instruction" for why). '' = glibc malloc.
GW_FEATURES=jemalloc
PERF=0
BUILD=1
OUT=""

usage() {
    cat <<EOF
usage: bench/run.sh [options]
  --quick               smoke run: 1 rep, 1 s runs, no warm-up, c=1,16 (php: c=children)
  --reps N              repetitions of the whole matrix (default 2)
  --duration S          seconds per measured wrk run (whole seconds, default 3)
  --warmup S            seconds of wrk warm-up before each measured run (default 1, 0 = none)
  --backends LIST       responder,php,fleet (default responder,php; fleet = three
                        responders behind one mount, our backend= fleet against an
                        nginx upstream of the same three, c from --fleet-conc)
  --fleet-conc LIST     concurrencies for the fleet backend (default 64)
  --scenarios LIST      tiny,64k,10m,post1m (default all)
  --conc LIST           concurrencies for the responder backend (default 1,16,64,256)
  --php-children N      php-fpm children per pool (pm=static, default 8)
  --php-conc LIST       concurrencies for php-fpm (default 1,CHILDREN; never above CHILDREN)
  --gw-threads N        our gateway's --threads (default 1: a current-thread runtime, like
                        nginx's worker_processes 1)
  --gw-features LIST    cargo features of our gateway's build (default jemalloc, the
                        production allocator; '' for glibc malloc)
  --perf                afterwards, profile our gateway (perf record -g, tiny GET, c=16)
  --no-build            use the release binaries already built
  --out DIR             results directory (default bench/results/<timestamp>)
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --reps) REPS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --backends) BACKENDS=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --conc) CONC=$2; shift ;;
        --fleet-conc) FLEET_CONC=$2; shift ;;
        --php-children) PHP_CHILDREN=$2; shift ;;
        --php-conc) PHP_CONC=$2; shift ;;
        --gw-threads) GW_THREADS=$2; shift ;;
        --gw-features) GW_FEATURES=$2; shift ;;
        --perf) PERF=1 ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [[ $QUICK == 1 ]]; then
    : "${REPS:=1}" "${DURATION:=1}" "${WARMUP:=0}" "${CONC:=1,16}" "${PHP_CONC:=$PHP_CHILDREN}"
fi
: "${REPS:=2}" "${DURATION:=3}" "${WARMUP:=1}" "${CONC:=1,16,64,256}" "${PHP_CONC:=1,$PHP_CHILDREN}"
if [[ $DURATION == 0 ]]; then
    DURATION=1
fi

log() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------

missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v php-fpm8.2 >/dev/null || missing+=(php8.2-fpm)
command -v curl >/dev/null || missing+=(curl)
if [[ ${#missing[@]} -gt 0 ]]; then
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; install them (apt-get install -y ${missing[*]})"
    log "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" >/dev/null || {
        apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null
    } || die "cannot install ${missing[*]}"
fi
command -v python3 >/dev/null || die "python3 is required"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
EX=$TARGET_DIR/release/examples
if [[ $BUILD == 1 ]]; then
    log "building release examples (gateway, bench_responder, fcgi_load)"
    # The helpers first, the gateway last: the features change the library's build, and
    # the gateway binary is the one that must have them.
    (cd "$ROOT" && cargo build --release --quiet --example bench_responder --example fcgi_load \
        && cargo build --release --quiet --example gateway ${GW_FEATURES:+--features "$GW_FEATURES"})
fi
for bin in gateway bench_responder fcgi_load; do
    [[ -x $EX/$bin ]] || die "$EX/$bin is missing (run without --no-build)"
done

# --- temp dir, cleanup -------------------------------------------------------------------

STARTED_AT=$(date +%s)
[[ -n $OUT ]] || OUT=$BENCH_DIR/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfcgi-bench.XXXXXX")
PIDS=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -d $TMP ]]; then
        cp -f "$TMP"/logs/* "$OUT/logs/" 2>/dev/null || true
        cp -f "$TMP"/nginx/error.log "$OUT/logs/nginx-error.log" 2>/dev/null || true
        cp -f "$TMP"/nginx/nginx.conf "$OUT/logs/nginx.conf" 2>/dev/null || true
        cp -f "$TMP"/php/fpm.conf "$OUT/logs/php-fpm.conf" 2>/dev/null || true
        cp -f "$TMP"/php/fpm.log "$OUT/logs/php-fpm.log" 2>/dev/null || true
        rm -rf "$TMP"
    fi
    log "done in $(( $(date +%s) - STARTED_AT )) s (exit $rc); results in $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$TMP/logs" "$TMP/www" "$TMP/php" "$TMP/nginx"
cp "$BENCH_DIR"/php/*.php "$TMP/www/"
DOCROOT=$TMP/www

# Five distinct free ports on 127.0.0.1 (nginx, ours, the responder, and two more
# responders that form the fleet with the first).
read -r NGINX_PORT OURS_PORT RESPONDER_PORT FLEET2_PORT FLEET3_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)

wait_tcp() { # host:port, seconds
    local deadline=$((SECONDS + $2))
    until python3 -c "import socket,sys; socket.create_connection(('${1%:*}', ${1##*:}), 1).close()" 2>/dev/null; do
        ((SECONDS < deadline)) || die "nothing listens on $1 (see logs in $OUT/logs)"
        sleep 0.1
    done
}
wait_unix() { # path, seconds
    local deadline=$((SECONDS + $2))
    until [[ -S $1 ]]; do
        ((SECONDS < deadline)) || die "no socket $1 (see logs in $OUT/logs)"
        sleep 0.1
    done
}

# --- backends ----------------------------------------------------------------------------

log "starting bench_responder on 127.0.0.1:$RESPONDER_PORT (1 thread)"
"$EX/bench_responder" --tcp "127.0.0.1:$RESPONDER_PORT" --threads 1 \
    >"$TMP/logs/responder.log" 2>&1 &
RESPONDER_PID=$!
PIDS+=("$RESPONDER_PID")
# The fleet: the responder above plus two more, each its own process (one thread).
FLEET_PIDS=("$RESPONDER_PID")
for port in "$FLEET2_PORT" "$FLEET3_PORT"; do
    "$EX/bench_responder" --tcp "127.0.0.1:$port" --threads 1 \
        >"$TMP/logs/responder-$port.log" 2>&1 &
    FLEET_PIDS+=("$!")
    PIDS+=("$!")
done
# Each fleet member gets a third of the single responder's connection budget, so both
# gateways hold the same number of upstream connections in total.
FLEET_CONNS=$(( (RESPONDER_CONNS + 2) / 3 ))

# One php-fpm master, three pools on three sockets: nginx, ours, direct. A keep-alive
# connection pins a child, so a shared pool would let one system's idle connections starve
# the other.
{
    cat <<EOF
[global]
pid = $TMP/php/fpm.pid
error_log = $TMP/php/fpm.log
log_level = warning
daemonize = no
EOF
    for pool in nginx ours direct; do
        cat <<EOF

[$pool]
user = root
group = root
listen = $TMP/php/$pool.sock
listen.backlog = 4096
pm = static
pm.max_children = $PHP_CHILDREN
pm.max_requests = 0
php_admin_value[opcache.enable] = 1
php_admin_value[opcache.memory_consumption] = 64
EOF
    done
} >"$TMP/php/fpm.conf"
log "starting php-fpm8.2 (pools nginx, ours, direct; pm=static, $PHP_CHILDREN children each)"
php-fpm8.2 -R -F -y "$TMP/php/fpm.conf" >"$TMP/logs/php-fpm.out" 2>&1 &
PHP_PID=$!
PIDS+=("$PHP_PID")

# --- gateways ----------------------------------------------------------------------------

sed -e "s#@PREFIX@#$TMP/nginx#g" \
    -e "s#@LISTEN@#127.0.0.1:$NGINX_PORT#g" \
    -e "s#@DOCROOT@#$DOCROOT#g" \
    -e "s#@RESPONDER_ADDR@#127.0.0.1:$RESPONDER_PORT#g" \
    -e "s#@RESPONDER_KEEPALIVE@#$RESPONDER_CONNS#g" \
    -e "s#@FLEET2_ADDR@#127.0.0.1:$FLEET2_PORT#g" \
    -e "s#@FLEET3_ADDR@#127.0.0.1:$FLEET3_PORT#g" \
    -e "s#@PHP_SOCKET@#$TMP/php/nginx.sock#g" \
    -e "s#@PHP_KEEPALIVE@#$PHP_CHILDREN#g" \
    -e "s#@PHP_CHILDREN@#$PHP_CHILDREN#g" \
    "$BENCH_DIR/nginx.conf.tmpl" >"$TMP/nginx/nginx.conf"
nginx -q -t -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
    || die "nginx rejected the configuration"
log "starting nginx on 127.0.0.1:$NGINX_PORT (1 worker)"
nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
    >"$TMP/logs/nginx.out" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

log "starting our gateway on 127.0.0.1:$OURS_PORT (--threads $GW_THREADS)"
"$EX/gateway" --threads "$GW_THREADS" \
    --listen "127.0.0.1:$OURS_PORT" --quiet \
    --app "/r=tcp://127.0.0.1:$RESPONDER_PORT,conns=$RESPONDER_CONNS" \
    --app "/f=tcp://127.0.0.1:$RESPONDER_PORT,backend=tcp://127.0.0.1:$FLEET2_PORT,backend=tcp://127.0.0.1:$FLEET3_PORT,conns=$FLEET_CONNS" \
    --php "/=unix:$TMP/php/ours.sock,root=$DOCROOT,conns=$PHP_CHILDREN" \
    >"$TMP/logs/gateway.log" 2>&1 &
OURS_PID=$!
PIDS+=("$OURS_PID")

wait_tcp "127.0.0.1:$RESPONDER_PORT" 10
wait_tcp "127.0.0.1:$FLEET2_PORT" 10
wait_tcp "127.0.0.1:$FLEET3_PORT" 10
for pool in nginx ours direct; do wait_unix "$TMP/php/$pool.sock" 10; done
wait_tcp "127.0.0.1:$NGINX_PORT" 10
wait_tcp "127.0.0.1:$OURS_PORT" 10

# --- sanity checks -----------------------------------------------------------------------

head -c 1048576 /dev/zero | tr '\0' x >"$TMP/post.bin"
check() { # name url expected_size [curl args...]
    local name=$1 url=$2 want=$3
    shift 3
    local got
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "$@" "$url") || true
    [[ $got == "200 $want" ]] || die "$name: $url answered '$got', expected '200 $want'"
}
NGINX_URL=http://127.0.0.1:$NGINX_PORT
OURS_URL=http://127.0.0.1:$OURS_PORT
for sys in nginx ours; do
    base=$NGINX_URL
    [[ $sys == ours ]] && base=$OURS_URL
    check "$sys" "$base/r/hello" 13
    check "$sys" "$base/f/hello" 13
    check "$sys" "$base/r/bytes?65536" 65536
    check "$sys" "$base/r/upload" 13 --data-binary "@$TMP/post.bin" -H 'Content-Type: application/octet-stream'
    check "$sys" "$base/hello.php" 13
    check "$sys" "$base/bytes.php?65536" 65536
    check "$sys" "$base/upload.php" 13 --data-binary "@$TMP/post.bin" -H 'Content-Type: application/octet-stream'
done
cat >"$DOCROOT/opcache.php" <<'EOF'
<?php echo function_exists('opcache_get_status') && (opcache_get_status(false)['opcache_enabled'] ?? false) ? 'on' : 'off';
EOF
OPCACHE=$(curl -s "$OURS_URL/opcache.php")
[[ $OPCACHE == on ]] || log "warning: opcache is '$OPCACHE' in php-fpm"
rm -f "$DOCROOT/opcache.php"
log "sanity checks passed (opcache $OPCACHE)"

# --- environment -------------------------------------------------------------------------

CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
MEM_GIB=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)
NGINX_V=$( (nginx -v 2>&1 || true) | sed 's#.*nginx/#nginx #')
PHP_V=$( (php-fpm8.2 -v 2>/dev/null || true) | head -1 | awk '{print "php-fpm " $2}')
WRK_V=$( (wrk -v 2>&1 || true) | head -1 | awk '{print "wrk " $2}')
RUSTC_V=$( (rustc -V 2>/dev/null || true) | awk '{print "rustc " $2}')
GIT_V=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
SETTINGS="reps=$REPS duration=${DURATION}s warmup=${WARMUP}s wrk -t1 --timeout 10s; responder c=$CONC (pool $RESPONDER_CONNS / nginx keepalive $RESPONDER_CONNS); fleet of 3 responders c=$FLEET_CONC (pool $FLEET_CONNS each / nginx keepalive $RESPONDER_CONNS); php c=$PHP_CONC ($PHP_CHILDREN static children per pool, pool/keepalive $PHP_CHILDREN); 10m up to c=$MAX_CONC_10M; gateway runtime threads $GW_THREADS, features '${GW_FEATURES}'"
MACHINE="$(nproc) cores ($CPU_MODEL), $MEM_GIB GiB, Linux $(uname -r)"
python3 - "$OUT/env.json" <<EOF
import json, sys
json.dump({
    "date": "$(date '+%Y-%m-%d %H:%M %Z')",
    "git": "$GIT_V",
    "machine": """$MACHINE""",
    "versions": "$NGINX_V, $PHP_V, $WRK_V, $RUSTC_V",
    "settings": """$SETTINGS""",
}, open(sys.argv[1], "w"), indent=1)
EOF

csv_json() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1].split(",")))' "$1"; }
int_json() { python3 -c 'import json,sys; print(json.dumps([int(x) for x in sys.argv[1].split(",")]))' "$1"; }
for c in ${PHP_CONC//,/ }; do
    ((c <= PHP_CHILDREN)) || die "--php-conc $c is above --php-children $PHP_CHILDREN (nginx would starve)"
done

cat >"$TMP/config.json" <<EOF
{
  "results": "$OUT/results.jsonl",
  "wrk_dir": "$BENCH_DIR/wrk",
  "fcgi_load": "$EX/fcgi_load",
  "reps": $REPS,
  "duration": $DURATION,
  "warmup": $WARMUP,
  "settle": 0.2,
  "wrk_timeout": 10,
  "direct_duration": $(python3 -c "print(max(1.0, $DURATION - 1))"),
  "direct_warmup": $(python3 -c "print(0.5 if $WARMUP > 0 else 0)"),
  "backends": $(csv_json "$BACKENDS"),
  "scenarios": $(csv_json "$SCENARIOS"),
  "responder_conc": $(int_json "$CONC"),
  "fleet_conc": $(int_json "$FLEET_CONC"),
  "fleet_pids": [$(IFS=,; echo "${FLEET_PIDS[*]}")],
  "php_conc": $(int_json "$PHP_CONC"),
  "max_conc_10m": $MAX_CONC_10M,
  "nginx_url": "$NGINX_URL",
  "ours_url": "$OURS_URL",
  "nginx_pid": $NGINX_PID,
  "ours_pid": $OURS_PID,
  "responder_pid": $RESPONDER_PID,
  "responder_addr": "127.0.0.1:$RESPONDER_PORT",
  "php_pid": $PHP_PID,
  "php_direct_socket": "$TMP/php/direct.sock",
  "docroot": "$DOCROOT"
}
EOF
cp "$TMP/config.json" "$OUT/logs/config.json"

# --- the matrix --------------------------------------------------------------------------

log "running the matrix: $SETTINGS"
# In the background so that a signal reaches the traps at once, not after the matrix.
python3 "$BENCH_DIR/lib/matrix.py" "$TMP/config.json" &
MATRIX_PID=$!
PIDS+=("$MATRIX_PID")
wait "$MATRIX_PID"

python3 "$BENCH_DIR/lib/report.py" "$OUT/results.jsonl" "$OUT/env.json" >"$OUT/report.md"
cat "$OUT/report.md"

# --- optional profile --------------------------------------------------------------------

if [[ $PERF == 1 ]]; then
    command -v perf >/dev/null || die "perf is not installed"
    log "profiling our gateway: tiny GET, c=16, 5 s"
    wrk -t1 -c16 -d1s "$OURS_URL/r/hello" >/dev/null
    perf record -q -g -e cpu-clock -F 4999 -p "$OURS_PID" -o "$OUT/perf.data" -- sleep 6 \
        >"$TMP/logs/perf-record.log" 2>&1 &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
    sleep 0.5
    wrk -t1 -c16 -d5s "$OURS_URL/r/hello" >"$OUT/perf-wrk.txt"
    wait "$PERF_PID" || true
    perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio -g none \
        --percent-limit 0.3 2>/dev/null | grep -v '^$' >"$OUT/perf-top.txt" || true
    log "top symbols by self time (full list in $OUT/perf-top.txt):"
    grep -E '^ +[0-9]' "$OUT/perf-top.txt" | head -15 >&2 || true
fi
