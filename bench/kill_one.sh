#!/usr/bin/env bash
# Kill one backend under load: what clients see, ours against nginx.
#
# Three php-fpm masters, each its own process group with two pools on two TCP ports (one
# for each gateway, so one gateway's kept-alive connections never pin the other's
# workers). Our gateway mounts the three "ours" pools as one fleet; nginx has an upstream
# of the three "nginx" pools with keepalive (its defaults otherwise: max_fails=1,
# fail_timeout=10s, fastcgi_next_upstream error timeout). For each gateway in turn, wrk
# drives a PHP script that sleeps 5 ms (so requests are in flight on every backend); at
# KILL_AT seconds the second master's whole process group gets SIGKILL, and at RESTART_AT
# it is started again. The report counts what wrk saw (statuses, socket errors), which
# backend answered, and how soon the restarted master served again.
#
#   bench/kill_one.sh                       # GET and POST, c=12 and 32, 25 s per run (~4 min)
#   bench/kill_one.sh --duration 30 --conc 64
#
# c=12 is the fleet's worker count; at c=32 requests queue. nginx has no upstream queue: it
# opens a connection per concurrent request, and with fastcgi_keep_conn the connections
# beyond a master's workers wait in its accept queue.
#
# Everything listens on 127.0.0.1 (free ports); everything started here is stopped on exit.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
DURATION=25
KILL_AT=5
RESTART_AT=10
CONC=12,32
CHILDREN=4
BUILD=1

while (($#)); do
    case $1 in
        --duration) DURATION=$2; shift ;;
        --conc) CONC=$2; shift ;;
        --kill-at) KILL_AT=$2; shift ;;
        --restart-at) RESTART_AT=$2; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "kill_one: $*" >&2; }
die() { log "$*"; exit 1; }
for cmd in wrk nginx php-fpm8.2 python3 curl; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (apt-get install wrk nginx-light php8.2-fpm curl)"
done

EX=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release --quiet --example gateway)
fi
[[ -x $EX/gateway ]] || die "$EX/gateway is missing (run without --no-build)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfcgi-kill.XXXXXX")
OUT=$BENCH_DIR/results/kill-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT" "$TMP/www" "$TMP/nginx"
PIDS=()
declare -A MASTER

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${MASTER[@]}" "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${MASTER[@]}" "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
    cp -f "$TMP"/*.log "$TMP"/nginx/error.log "$OUT/" 2>/dev/null || true
    rm -rf "$TMP"
    log "results in $OUT (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat >"$TMP/www/sleep.php" <<'EOF'
<?php usleep(5000); echo getenv('BACKEND_NAME'), "\n";
EOF

# Nine free ports: nginx (two servers), ours, and two per master.
read -r NGINX_PORT CAPPED_PORT OURS_PORT P1O P1N P2O P2N P3O P3N < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
declare -A PORT_OURS=([b1]=$P1O [b2]=$P2O [b3]=$P3O) PORT_NGINX=([b1]=$P1N [b2]=$P2N [b3]=$P3N)

start_master() { # name
    local name=$1 pool
    {
        echo "[global]"
        echo "pid = $TMP/$name.pid"
        echo "error_log = $TMP/$name-fpm.log"
        echo "daemonize = no"
        for pool in ours nginx; do
            local port=${PORT_OURS[$name]}
            [[ $pool == nginx ]] && port=${PORT_NGINX[$name]}
            cat <<EOF
[$pool]
user = root
group = root
listen = 127.0.0.1:$port
listen.backlog = 1024
pm = static
pm.max_children = $CHILDREN
env[BACKEND_NAME] = $name
access.log = $TMP/$name-$pool-access.log
access.format = "%{%s}t %m %s"
EOF
        done
    } >"$TMP/$name.conf"
    setsid php-fpm8.2 -R -F -y "$TMP/$name.conf" >>"$TMP/$name-fpm.log" 2>&1 &
    MASTER[$name]=$!
}

wait_tcp() {
    local deadline=$((SECONDS + 10))
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1).close()" 2>/dev/null; do
        ((SECONDS < deadline)) || die "nothing listens on 127.0.0.1:$1"
        sleep 0.1
    done
}

for b in b1 b2 b3; do start_master "$b"; done
for b in b1 b2 b3; do wait_tcp "${PORT_OURS[$b]}"; wait_tcp "${PORT_NGINX[$b]}"; done

cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/cbt;
    fastcgi_temp_path $TMP/nginx/ft;
    proxy_temp_path $TMP/nginx/pt;
    uwsgi_temp_path $TMP/nginx/ut;
    scgi_temp_path $TMP/nginx/st;
    upstream php {
        server 127.0.0.1:$P1N;
        server 127.0.0.1:$P2N;
        server 127.0.0.1:$P3N;
        keepalive $((3 * CHILDREN));
    }
    # The same servers with a connection cap per server at the master's workers (what
    # our conns= does); nginx has no queue for it, so a request that finds every server
    # at its cap gets a 502.
    upstream php_capped {
        server 127.0.0.1:$P1N max_conns=$CHILDREN;
        server 127.0.0.1:$P2N max_conns=$CHILDREN;
        server 127.0.0.1:$P3N max_conns=$CHILDREN;
        keepalive $((3 * CHILDREN));
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $TMP/www;
        location ~ \.php\$ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_keep_conn on;
            fastcgi_pass php;
        }
    }
    server {
        listen 127.0.0.1:$CAPPED_PORT;
        root $TMP/www;
        location ~ \.php\$ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_keep_conn on;
            fastcgi_pass php_capped;
        }
    }
}
EOF
nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" >"$TMP/nginx.log" 2>&1 &
PIDS+=("$!")
"$EX/gateway" --threads 1 --quiet --listen "127.0.0.1:$OURS_PORT" \
    --php "/=tcp://127.0.0.1:$P1O,backend=tcp://127.0.0.1:$P2O,backend=tcp://127.0.0.1:$P3O,root=$TMP/www,conns=$CHILDREN" \
    >"$TMP/gateway.log" 2>&1 &
PIDS+=("$!")
wait_tcp "$NGINX_PORT"
wait_tcp "$CAPPED_PORT"
wait_tcp "$OURS_PORT"
for port in "$NGINX_PORT" "$CAPPED_PORT" "$OURS_PORT"; do
    got=$(curl -s "http://127.0.0.1:$port/sleep.php")
    [[ $got == b? ]] || die "127.0.0.1:$port/sleep.php answered '$got'"
done

cat >"$TMP/count.lua" <<'EOF'
-- Counts statuses and which backend answered (the body names it).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
    counts = {}
    if args[1] == "post" then
        wrk.method = "POST"
        wrk.body = string.rep("x", 4096)
        wrk.headers["Content-Type"] = "application/octet-stream"
    end
end
function response(status, headers, body)
    local key = tostring(status) .. ":" .. (body:match("^(b%d)") or "-")
    counts[key] = (counts[key] or 0) + 1
end
function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
    end
    local keys = {}
    for k in pairs(total) do table.insert(keys, k) end
    table.sort(keys)
    local e = summary.errors
    io.write(string.format("errors connect=%d read=%d write=%d timeout=%d status=%d\n",
        e.connect, e.read, e.write, e.timeout, e.status))
    for _, k in ipairs(keys) do io.write(string.format("answer %s %d\n", k, total[k])) end
end
EOF

REPORT=$OUT/report.md
{
    echo "# Kill one backend under load"
    echo
    echo "3 php-fpm masters x $CHILDREN static children (a pool per gateway), sleep.php (5 ms)."
    echo "wrk -t1 -c{$CONC} -d${DURATION}s; master b2 SIGKILLed (whole group) at ${KILL_AT}s, restarted at ${RESTART_AT}s."
    echo "Ours: --php /=fleet of 3,conns=$CHILDREN. nginx: upstream of 3, keepalive $((3 * CHILDREN)), defaults;"
    echo "nginx-max_conns: the same with max_conns=$CHILDREN per server."
    echo
    echo "| gateway | c | method | requests | non-2xx | socket errors | b1 / b2 / b3 answers | b2 served again after restart |"
    echo "|---|---:|---|---:|---:|---:|---|---:|"
} >"$REPORT"

run_one() { # gateway port method conc
    local sys=$1 port=$2 method=$3 pool=$1 conc=$4
    [[ $sys == ours ]] || pool=nginx
    # The two nginx upstreams share the "nginx" pools; they run one after the other.
    log "$sys $method: wrk c=$conc ${DURATION}s, kill b2 at ${KILL_AT}s, restart at ${RESTART_AT}s"
    wrk -t1 -c"$conc" -d"${DURATION}s" --timeout 10s -s "$TMP/count.lua" \
        "http://127.0.0.1:$port/sleep.php" -- "$method" >"$TMP/wrk-$sys-$method-$conc.log" 2>&1 &
    local wrk_pid=$!
    sleep "$KILL_AT"
    kill -KILL -- "-${MASTER[b2]}" 2>/dev/null || true
    sleep "$((RESTART_AT - KILL_AT))"
    local restarted=$(date +%s.%N)
    start_master b2
    wait "$wrk_pid" || true
    local reqs non2xx sock answers again
    reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk-$sys-$method-$conc.log")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$TMP/wrk-$sys-$method-$conc.log")
    sock=$(awk '/^errors/ {split($2,a,"="); split($3,b,"="); split($4,c,"="); split($5,d,"="); print a[2]+b[2]+c[2]+d[2]}' "$TMP/wrk-$sys-$method-$conc.log")
    answers=$(for b in b1 b2 b3; do
        grep -E "^answer 2[0-9][0-9]:$b " "$TMP/wrk-$sys-$method-$conc.log" | awk '{s+=$3} END {print s+0}'
    done | paste -sd/ | sed 's#/# / #g')
    # The first request the restarted b2 logged for this gateway's pool, after the restart.
    # The first request the restarted b2 logged for this gateway's pool (the access log
    # has whole seconds, so this is an upper bound).
    again=$(awk -v t="${restarted%.*}" '$1 >= t {print $1 - t + 1; exit}' "$TMP/b2-$pool-access.log" 2>/dev/null || true)
    [[ -n $again ]] && again="≤ $again s" || again="never"
    echo "| $sys | $conc | ${method^^} | $reqs | ${non2xx:-0} | $sock | $answers | $again |" >>"$REPORT"
    cat "$TMP/wrk-$sys-$method-$conc.log" >>"$OUT/wrk.log"
    wait_tcp "${PORT_OURS[b2]}"
    sleep 2
}

for conc in ${CONC//,/ }; do
    for method in get post; do
        run_one ours "$OURS_PORT" "$method" "$conc"
        run_one nginx "$NGINX_PORT" "$method" "$conc"
        run_one nginx-max_conns "$CAPPED_PORT" "$method" "$conc"
    done
done
cat "$REPORT"
