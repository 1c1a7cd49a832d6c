#!/usr/bin/env bash
# Chaos soak: the gateway example (release build) in front of a fleet of real php-fpm
# masters, a php-cgi it spawns itself and a multiplexing Go net/http/fcgi backend, mixed load
# from examples/chaos_load, and at random moments a backend killed
# with SIGKILL (and restarted), frozen with SIGSTOP for a few seconds, or reloaded
# (SIGUSR2). Ends with the one summary line of chaos_load; exits non-zero when a
# must-be-zero count (checksum mismatches, false completes, disallowed failures, leaked
# descriptors) is not zero. See RELIABILITY.md.
#
#   scripts/chaos.sh [MINUTES]       # default 2; the soak of record is 60
#
# Environment: CHAOS_CONCURRENCY (10), CHAOS_FPM (3 masters), CHAOS_WORKERS (4 per
# master), CHAOS_MAX_REQUESTS (pm.max_requests, 25), CHAOS_SPAWN (1: also a php-cgi the
# gateway spawns and supervises; 0: php-fpm only), CHAOS_MUX (1: also the Go backend, on
# multiplexed connections), CHAOS_SEED, CHAOS_KEEP=1 (keep the
# work directory and its logs). Loopback only; everything it starts runs in process
# groups of its own and is stopped on exit, also on Ctrl-C.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MINUTES=${1:-2}
CONCURRENCY=${CHAOS_CONCURRENCY:-10}
FPM_COUNT=${CHAOS_FPM:-3}
WORKERS=${CHAOS_WORKERS:-4}
MAX_REQUESTS=${CHAOS_MAX_REQUESTS:-25}
SEED=${CHAOS_SEED:-$RANDOM$RANDOM}
RANDOM=$((SEED % 32768))
# The gateway's idle_timeout is 15 s and its reaper looks at idle connections about that
# often, so one may live up to ~30 s: the last part of the run lets them expire so that
# the descriptor count at the end means something.
SETTLE=35
TOTAL=$((MINUTES * 60))
LOAD=$((TOTAL - SETTLE - 5))
((LOAD >= 10)) || { echo "chaos.sh: MINUTES must be at least 1" >&2; exit 2; }

FPM=$(command -v php-fpm || compgen -G '/usr/sbin/php-fpm*' | head -n1 || true)
[[ -x $FPM ]] || { echo "chaos.sh: php-fpm not found (scripts/test.sh installs it)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tower-fastcgi-chaos.XXXXXX")
EVENTS=$WORK/events
: >"$EVENTS"
GATEWAY_PGID=
LOAD_PID=

cleanup() {
    set +e
    # Fault subshells first (they would restart backends), then every group we started.
    local jobs_left
    jobs_left=$(jobs -p)
    [[ -n $jobs_left ]] && kill $jobs_left 2>/dev/null
    for f in "$WORK"/pgid.*; do
        [[ -f $f ]] && kill -CONT -- "-$(cat "$f")" 2>/dev/null && kill -KILL -- "-$(cat "$f")" 2>/dev/null
    done
    local spawned
    spawned=$([[ -n $GATEWAY_PGID ]] && spawned_pgid)
    [[ -n $spawned ]] && kill -CONT -- "-$spawned" 2>/dev/null
    [[ -n $GATEWAY_PGID ]] && kill -INT -- "-$GATEWAY_PGID" 2>/dev/null && sleep 0.3 \
        && kill -KILL -- "-$GATEWAY_PGID" 2>/dev/null
    wait 2>/dev/null
    if [[ ${CHAOS_KEEP:-0} == 1 ]]; then echo "chaos.sh: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log_event() { echo "$(date +%s%3N) $1 $2" >>"$EVENTS"; }

# A free loopback TCP port (bound and released; the backend binds it a moment later).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- the PHP application: every answer carries the SHA-256 of its body ----
mkdir -p "$WORK/root"
cat >"$WORK/root/small.php" <<'PHP'
<?php
$n = (int)($_GET['n'] ?? 0);
$body = 'n=' . $n . ' seed=' . ($_GET['seed'] ?? '') . "\n" . str_repeat('s', $n);
header('X-Sha256: ' . hash('sha256', $body));
if (($_GET['cl'] ?? '0') === '1') header('Content-Length: ' . strlen($body));
echo $body;
PHP
cat >"$WORK/root/echo.php" <<'PHP'
<?php
$in = file_get_contents('php://input');
$body = strlen($in) . ' ' . hash('sha256', $in);
header('X-Sha256: ' . hash('sha256', $body));
echo $body;
PHP
cat >"$WORK/root/download.php" <<'PHP'
<?php
$size = min((int)($_GET['size'] ?? 0), 16 << 20);
$body = random_bytes($size);
header('Content-Type: application/octet-stream');
header('X-Sha256: ' . hash('sha256', $body));
if (($_GET['cl'] ?? '0') === '1') header('Content-Length: ' . $size);
// In 64 KiB writes, so that a kill lands in the middle of a response, not only before it.
for ($at = 0; $at < $size; $at += 65536) echo substr($body, $at, 65536);
PHP

# ---- backends: NAME[i], KIND[i], ADDR[i]; start_backend i starts or restarts one ----
NAMES=()
KINDS=()
ADDRS=()

add_fpm_masters() {
    local i port dir
    for ((i = 0; i < FPM_COUNT; i++)); do
        port=$(free_port)
        dir=$WORK/fpm$i
        mkdir -p "$dir"
        cat >"$dir/php-fpm.conf" <<CONF
[global]
pid = $dir/php-fpm.pid
error_log = $dir/php-fpm.log
log_level = warning
daemonize = no
; a reload (SIGUSR2) gives busy workers 1 s, then terminates them
process_control_timeout = 1s
[chaos]
$( ((EUID == 0)) && printf 'user = root\ngroup = root\n')
listen = 127.0.0.1:$port
listen.backlog = 511
pm = static
pm.max_children = $WORKERS
pm.max_requests = $MAX_REQUESTS
request_terminate_timeout = 120s
catch_workers_output = yes
clear_env = yes
php_admin_value[post_max_size] = 64M
php_admin_value[memory_limit] = 256M
php_admin_value[output_buffering] = 0
CONF
        NAMES+=("fpm$i")
        KINDS+=(fpm)
        ADDRS+=("tcp://127.0.0.1:$port")
    done
}

# A php-cgi the gateway spawns and supervises itself (issue 14): one process with
# PHP_FCGI_CHILDREN workers on a socket only the gateway knows, so this script finds it
# as the gateway's php-cgi child (its own process group) and logs a "start" when the
# supervisor has replaced a killed one. php.ini settings as the php-fpm pools have.
PHPCGI=$(command -v php-cgi || true)
add_spawned_php_cgi() {
    ((${CHAOS_SPAWN:-1} == 1)) || return 0
    [[ -x $PHPCGI ]] || { echo "chaos.sh: php-cgi not found; no spawned backend" >&2; return 0; }
    mkdir -p "$WORK/phpini"
    cat >"$WORK/phpini/chaos.ini" <<INI
post_max_size = 64M
memory_limit = 256M
output_buffering = 0
INI
    NAMES+=(spawn0)
    KINDS+=(spawned)
    ADDRS+=("spawn:$PHPCGI")
}

# The process group of the php-cgi the gateway spawned (empty while there is none).
# The gateway's only children are the processes it spawns (php-cgi's own workers are
# the php-cgi master's). Never fails: it runs under `set -e` in the fault subshells.
spawned_pgid() {
    local pid
    pid=$(pgrep -P "$GATEWAY_PGID" | head -n1 || true)
    [[ -z $pid ]] || ps -o pgid= -p "$pid" | tr -d ' ' || true
}

# A multiplexing backend (issue 13): the same three scripts in Go's net/http/fcgi, which
# answers FCGI_MPXS_CONNS=1, so the mount (mpx=auto) runs many requests on each of its
# connections while php-fpm's stay one request each. Built once into the work dir;
# CHAOS_MUX=0 (or no go) leaves it out.
GO=$(command -v go || true)
add_multiplex_backend() {
    ((${CHAOS_MUX:-1} == 1)) || return 0
    [[ -x $GO ]] || { echo "chaos.sh: go not found; no multiplexing backend" >&2; return 0; }
    mkdir -p "$WORK/gomux"
    cat >"$WORK/gomux/main.go" <<'GO'
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"strconv"
	"strings"
)

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func handle(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case strings.HasSuffix(r.URL.Path, "/small.php"):
		n, _ := strconv.Atoi(q.Get("n"))
		body := []byte(fmt.Sprintf("n=%d seed=%s\n%s", n, q.Get("seed"), strings.Repeat("s", n)))
		w.Header().Set("X-Sha256", sum(body))
		if q.Get("cl") == "1" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.Write(body)
	case strings.HasSuffix(r.URL.Path, "/echo.php"):
		in, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body := []byte(fmt.Sprintf("%d %s", len(in), sum(in)))
		w.Header().Set("X-Sha256", sum(body))
		w.Write(body)
	case strings.HasSuffix(r.URL.Path, "/download.php"):
		size, _ := strconv.Atoi(q.Get("size"))
		if size > 16<<20 {
			size = 16 << 20
		}
		body := make([]byte, size)
		rand.Read(body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Sha256", sum(body))
		if q.Get("cl") == "1" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		for at := 0; at < size; at += 65536 {
			end := at + 65536
			if end > size {
				end = size
			}
			if _, err := w.Write(body[at:end]); err != nil {
				return
			}
		}
	default:
		http.NotFound(w, r)
	}
}

func main() {
	l, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, fcgi.Serve(l, http.HandlerFunc(handle)))
}
GO
    (cd "$WORK/gomux" && HOME=${HOME:-/root} GOCACHE=${GOCACHE:-${TMPDIR:-/tmp}/tower-fastcgi-gocache} GO111MODULE=off \
        "$GO" build -o gomux main.go) || { echo "chaos.sh: go build failed; no multiplexing backend" >&2; return 0; }
    NAMES+=(gomux)
    KINDS+=(mux)
    ADDRS+=("tcp://127.0.0.1:$(free_port)")
}

start_backend() {
    local i=$1 dir=$WORK/${NAMES[$1]}
    case ${KINDS[$i]} in
        fpm)
            # exec setsid in a subshell that is not a group leader: no fork, so $! is the
            # master and its pid is its process group (workers included).
            (exec setsid "$FPM" -n -F -R -p "$dir" -y "$dir/php-fpm.conf" \
                >>"$dir/stdout.log" 2>&1 </dev/null) &
            echo $! >"$WORK/pgid.$i"
            disown $!  # stopped by process group; no "Killed" notices from bash
            ;;
        mux)
            (exec setsid "$WORK/gomux/gomux" "${ADDRS[$i]#tcp://}" \
                >>"$WORK/gomux/stdout.log" 2>&1 </dev/null) &
            echo $! >"$WORK/pgid.$i"
            disown $!
            ;;
        spawned) ;;  # the gateway starts it, and restarts it after a kill
        *) echo "chaos.sh: no way to start backend kind ${KINDS[$i]}" >&2; return 1 ;;
    esac
}

wait_listening() {
    local port=${1##*:} n
    for ((n = 0; n < 100; n++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "chaos.sh: nothing listens on $1" >&2
    return 1
}

add_fpm_masters
add_spawned_php_cgi
add_multiplex_backend
COUNT=${#NAMES[@]}

# CHAOS_PROFILE=debug uses the debug build `cargo test` has just made (scripts/test.sh
# does, so the suite does not pay for a release build); the soak of record is release.
PROFILE=${CHAOS_PROFILE:-release}
case $PROFILE in
    release) BIN=target/release/examples; PROFILE_FLAG=(--release) ;;
    debug) BIN=target/debug/examples; PROFILE_FLAG=() ;;
    *) echo "chaos.sh: CHAOS_PROFILE must be release or debug" >&2; exit 2 ;;
esac
echo "chaos.sh: building ($PROFILE, nice 19)" >&2
nice -n 19 cargo build --quiet "${PROFILE_FLAG[@]}" --example gateway --example chaos_load

for ((i = 0; i < COUNT; i++)); do start_backend "$i"; done
for ((i = 0; i < COUNT; i++)); do
    [[ ${KINDS[$i]} == spawned ]] || wait_listening "${ADDRS[$i]}"
done

GW_PORT=$(free_port)
# A spawned backend is the mount's own (spawn:PROGRAM); the others are added to it.
primary=
others=()
spawn_opts=
for ((i = 0; i < COUNT; i++)); do
    if [[ ${KINDS[$i]} == spawned ]]; then
        primary=${ADDRS[$i]}
        spawn_opts=",procs=1,env=PHP_FCGI_CHILDREN=$WORKERS,env=PHP_FCGI_MAX_REQUESTS=$MAX_REQUESTS"
        spawn_opts+=",env=PHP_INI_SCAN_DIR=$WORK/phpini"
    else
        others+=("${ADDRS[$i]}")
    fi
done
if [[ -z $primary ]]; then primary=${others[0]}; others=("${others[@]:1}"); fi
mount="/=$primary"
for a in "${others[@]}"; do mount+=",backend=$a"; done
mount+="$spawn_opts,root=$WORK/root,conns=$WORKERS"
# php-fpm answers FCGI_MPXS_CONNS=0 and keeps one request per connection; Go multiplexes;
# the spawned php-cgi is never asked.
mount+=",mpx=auto"
(exec setsid nice -n 10 "$BIN/gateway" --quiet --threads 2 \
    --listen "127.0.0.1:$GW_PORT" --php "$mount" >"$WORK/gateway.log" 2>&1 </dev/null) &
GATEWAY_PGID=$!
disown "$GATEWAY_PGID"
wait_listening "127.0.0.1:$GW_PORT"

echo "chaos.sh: ${MINUTES} min: $COUNT backends, load ${LOAD}s at c=$CONCURRENCY, settle ${SETTLE}s, seed $SEED, work dir $WORK" >&2
nice -n 19 "$BIN/chaos_load" --url "http://127.0.0.1:$GW_PORT" \
    --seconds "$LOAD" --concurrency "$CONCURRENCY" --gateway-pid "$GATEWAY_PGID" \
    --events "$EVENTS" --settle "$SETTLE" --seed "$SEED" &
LOAD_PID=$!

# ---- the faults: one every 1-4 s on a backend that is up, at most two down at once ----
fault() {
    local i=$1 action=$2 pause_ms=$3 pgid
    if [[ ${KINDS[$i]} == spawned ]]; then
        fault_spawned "$i" "$action" "$pause_ms"
        rm -f "$WORK/busy.$i"
        return
    fi
    pgid=$(cat "$WORK/pgid.$i")
    # Go has no graceful reload: SIGUSR2 would end it without a restart. A kill it is.
    [[ ${KINDS[$i]} == mux && $action == reload ]] && action=kill
    case $action in
        kill)
            kill -KILL -- "-$pgid" 2>/dev/null || true
            log_event kill "${NAMES[$i]}"
            sleep "$(printf '%d.%03d' $((pause_ms / 1000)) $((pause_ms % 1000)))"
            start_backend "$i"
            wait_listening "${ADDRS[$i]}" || true
            log_event start "${NAMES[$i]}"
            ;;
        stop)
            kill -STOP -- "-$pgid" 2>/dev/null || true
            log_event stop "${NAMES[$i]}"
            sleep "$(printf '%d.%03d' $((pause_ms / 1000)) $((pause_ms % 1000)))"
            kill -CONT -- "-$pgid" 2>/dev/null || true
            log_event cont "${NAMES[$i]}"
            ;;
        reload)
            kill -USR2 "$pgid" 2>/dev/null || true
            log_event reload "${NAMES[$i]}"
            sleep 2
            ;;
    esac
    rm -f "$WORK/busy.$i"
}

# The spawned php-cgi: kill -9 its group (a reload is a kill too: php-cgi has none) and
# log "start" once the gateway's supervisor has a new one running; or freeze it.
fault_spawned() {
    local i=$1 action=$2 pause_ms=$3 pgid n
    pgid=$(spawned_pgid)
    [[ -n $pgid ]] || return 0
    case $action in
        kill | reload)
            kill -KILL -- "-$pgid" 2>/dev/null || true
            log_event kill "${NAMES[$i]}"
            for ((n = 0; n < 200; n++)); do
                local now
                now=$(spawned_pgid)
                [[ -n $now && $now != "$pgid" ]] && break
                sleep 0.05
            done
            log_event start "${NAMES[$i]}"
            ;;
        stop)
            kill -STOP -- "-$pgid" 2>/dev/null || true
            log_event stop "${NAMES[$i]}"
            sleep "$(printf '%d.%03d' $((pause_ms / 1000)) $((pause_ms % 1000)))"
            kill -CONT -- "-$pgid" 2>/dev/null || true
            log_event cont "${NAMES[$i]}"
            ;;
    esac
}

chaos_until=$((SECONDS + LOAD - 3))
while ((SECONDS < chaos_until)) && kill -0 "$LOAD_PID" 2>/dev/null; do
    sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
    busy=("$WORK"/busy.*)
    ((${#busy[@]} < 2)) || continue
    i=$((RANDOM % COUNT))
    [[ -e $WORK/busy.$i ]] && continue
    case $((RANDOM % 10)) in
        0 | 1 | 2 | 3) action=kill ;;
        4 | 5 | 6) action=stop ;;
        *) action=reload ;;
    esac
    touch "$WORK/busy.$i"
    fault "$i" "$action" $((300 + RANDOM % 3700)) &
done
# Let the last faults recover (every backend up) before the load ends.
while compgen -G "$WORK/busy.*" >/dev/null; do sleep 0.2; done

status=0
wait "$LOAD_PID" || status=$?
LOAD_PID=
exit "$status"
