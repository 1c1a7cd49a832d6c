#!/usr/bin/env python3
"""Runs the benchmark matrix for bench/run.sh and appends one JSON line per run.

For every repetition, backend, scenario and concurrency ("cell") it runs wrk against
nginx and our gateway in ABBA order (nginx, ours, ours, nginx), then the "direct" ceiling
(fcgi_load against the same FastCGI backend, no HTTP). Each measured run is preceded by a
wrk warm-up of the same load (discarded), except the second of the two back-to-back runs
of our gateway, which follows a run of the same load anyway. Around each measured wrk run it
samples, from /proc:

* the gateway's CPU time (utime+stime of every process of the gateway: nginx master and
  worker, or our single multi-threaded process), and the backend's CPU time;
* the gateway's peak RSS: VmHWM is reset to the current RSS (`echo 5 > clear_refs`) just
  before the measured run and read right after it, together with VmRSS before and after.

The configuration comes as JSON (written by run.sh); stdlib only.
"""

import json
import os
import re
import resource
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

# scenario -> (path for the responder backend, path for php-fpm, wrk script, body bytes)
SCENARIOS = {
    "tiny": ("/r/hello", "/hello.php", "report.lua", 0),
    "64k": ("/r/bytes?65536", "/bytes.php?65536", "report.lua", 0),
    "10m": ("/r/bytes?10485760", "/bytes.php?10485760", "report.lua", 0),
    "post1m": ("/r/upload", "/upload.php", "post1m.lua", 1048576),
}

EXPECTED_BYTES = {"tiny": 13, "64k": 65536, "10m": 10485760, "post1m": 13}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cpu_ticks(pid):
    """utime+stime of a whole process (all its threads), in clock ticks."""
    stat = read_file(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def status_kib(pid, key):
    status = read_file(f"/proc/{pid}/status")
    if status is None:
        return None
    m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) if m else None


def reset_hwm(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def children_of(ppid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = read_file(f"/proc/{entry}/stat")
        if stat is None:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == ppid:
            kids.append(int(entry))
    return sorted(kids)


def cmdline(pid):
    raw = read_file(f"/proc/{pid}/cmdline")
    return (raw or "").replace("\0", " ").strip()


def machine_busy():
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    line = read_file("/proc/stat").splitlines()[0].split()[1:]
    vals = [int(v) for v in line]
    idle = vals[3] + vals[4]
    total = sum(vals[:8])
    return total - idle, total


class Processes:
    """The PIDs behind one system, looked up afresh for every run."""

    def __init__(self, kind, pid, pool=None):
        self.kind = kind  # "nginx", "single", "multi" (pid is a list) or "php-pool"
        self.pid = pid
        self.pool = pool

    def pids(self):
        if self.kind == "nginx":
            return [self.pid] + children_of(self.pid)
        if self.kind == "php-pool":
            return [
                p
                for p in children_of(self.pid)
                if cmdline(p).startswith(f"php-fpm: pool {self.pool}")
            ]
        if self.kind == "multi":
            return list(self.pid)
        return [self.pid]

    def cpu(self, pids):
        ticks = [cpu_ticks(p) for p in pids]
        return sum(t for t in ticks if t is not None)


class Matrix:
    def __init__(self, cfg):
        self.cfg = cfg
        self.out = open(cfg["results"], "a")
        self.wrk_dir = cfg["wrk_dir"]
        self.gateways = {
            "nginx": Processes("nginx", cfg["nginx_pid"]),
            "ours": Processes("single", cfg["ours_pid"]),
        }
        self.urls = {"nginx": cfg["nginx_url"], "ours": cfg["ours_url"]}
        self.backends = {
            "responder": {
                "nginx": Processes("single", cfg["responder_pid"]),
                "ours": Processes("single", cfg["responder_pid"]),
                "direct": Processes("single", cfg["responder_pid"]),
            },
            "php": {
                name: Processes("php-pool", cfg["php_pid"], pool=name)
                for name in ("nginx", "ours", "direct")
            },
            # The direct ceiling of the fleet is measured on its first member alone.
            "fleet": {
                "nginx": Processes("multi", cfg["fleet_pids"]),
                "ours": Processes("multi", cfg["fleet_pids"]),
                "direct": Processes("single", cfg["responder_pid"]),
            },
        }

    # -- one wrk run -------------------------------------------------------------------

    def wrk(self, url, conns, seconds, script, timeout):
        cmd = [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{seconds}s",
            f"--timeout={timeout}s",
            "-s",
            os.path.join(self.wrk_dir, script),
            url,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        result = None
        for line in proc.stdout.splitlines():
            if line.startswith("BENCH_JSON "):
                result = json.loads(line[len("BENCH_JSON ") :])
        if result is None:
            raise RuntimeError(
                f"wrk printed no result (exit {proc.returncode}): {proc.stderr.strip()} {proc.stdout.strip()}"
            )
        result["loadgen_cpu_s"] = round(cpu, 3)
        return result

    def measure_http(self, rep, backend, scenario, conns, system, order, warm):
        cfg = self.cfg
        path_r, path_php, script, _ = SCENARIOS[scenario]
        path = {"responder": path_r, "fleet": path_r.replace("/r/", "/f/", 1)}.get(
            backend, path_php
        )
        url = self.urls[system] + path
        timeout = cfg["wrk_timeout"]
        if cfg["warmup"] > 0 and not warm:
            self.wrk(url, conns, cfg["warmup"], script, timeout)
            time.sleep(cfg["settle"])
        gw = self.gateways[system]
        be = self.backends[backend][system]
        gw_pids, be_pids = gw.pids(), be.pids()
        for p in gw_pids:
            reset_hwm(p)
        rss_before = sum(status_kib(p, "VmRSS") or 0 for p in gw_pids)
        gw_cpu0, be_cpu0 = gw.cpu(gw_pids), be.cpu(be_pids)
        busy0 = machine_busy()
        t0 = time.monotonic()
        res = self.wrk(url, conns, cfg["duration"], script, timeout)
        wall = time.monotonic() - t0
        gw_cpu1, be_cpu1 = gw.cpu(gw_pids), be.cpu(be_pids)
        busy1 = machine_busy()
        hwm = [status_kib(p, "VmHWM") or 0 for p in gw_pids]
        rss_after = sum(status_kib(p, "VmRSS") or 0 for p in gw_pids)
        n = res["requests"]
        gw_cpu_s = (gw_cpu1 - gw_cpu0) / CLK_TCK
        be_cpu_s = (be_cpu1 - be_cpu0) / CLK_TCK
        errors = (
            res["connect_errors"]
            + res["read_errors"]
            + res["write_errors"]
            + res["status_errors"]
            + res["timeouts"]
        )
        if n == 0:
            errors += 1  # no completions: a stall wrk does not count as an error
        row = {
            "rep": rep,
            "backend": backend,
            "scenario": scenario,
            "conns": conns,
            "system": system,
            "order": order,
            "url": url,
            "warmup_s": 0 if warm else cfg["warmup"],
            "duration_s": res["duration_us"] / 1e6,
            "requests": n,
            "rps": n / (res["duration_us"] / 1e6) if res["duration_us"] else 0.0,
            "mean_ms": res["mean_ms"],
            "p50_ms": res["p50_ms"],
            "p90_ms": res["p90_ms"],
            "p99_ms": res["p99_ms"],
            "max_ms": res["max_ms"],
            "bytes_per_response": res["bytes"] // n if n else 0,
            "errors": errors,
            "error_detail": {
                k: res[k]
                for k in (
                    "connect_errors",
                    "read_errors",
                    "write_errors",
                    "status_errors",
                    "timeouts",
                )
            },
            "gw_cpu_s": round(gw_cpu_s, 3),
            "gw_cpu_us_per_req": gw_cpu_s * 1e6 / n if n else None,
            "gw_cores": gw_cpu_s / wall,
            "gw_pids": gw_pids,
            "gw_hwm_kib": sum(hwm),
            "gw_hwm_kib_each": hwm,
            "gw_rss_before_kib": rss_before,
            "gw_rss_after_kib": rss_after,
            "backend_cpu_us_per_req": be_cpu_s * 1e6 / n if n else None,
            "backend_cores": be_cpu_s / wall,
            "loadgen_cpu_s": res["loadgen_cpu_s"],
            "machine_busy": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self.emit(row)
        return row

    # -- the direct ceiling ------------------------------------------------------------

    def measure_direct(self, rep, backend, scenario, conns):
        cfg = self.cfg
        _, _, _, body = SCENARIOS[scenario]
        query = {"64k": "65536", "10m": "10485760"}.get(scenario, "")
        cmd = [cfg["fcgi_load"], "-c", str(conns), "-d", str(cfg["direct_duration"])]
        cmd += ["--warmup", str(cfg["direct_warmup"])]
        if backend in ("responder", "fleet"):
            cmd += ["--tcp", cfg["responder_addr"], "--script", "/srv/responder/bench"]
        else:
            script = {"tiny": "hello.php", "64k": "bytes.php", "10m": "bytes.php"}.get(
                scenario, "upload.php"
            )
            cmd += ["--unix", cfg["php_direct_socket"]]
            cmd += ["--script", os.path.join(cfg["docroot"], script), "--uri", "/" + script]
        if query:
            cmd += ["--query", query]
        if body:
            cmd += ["--body", str(body)]
        be = self.backends[backend]["direct"]
        be_pids = be.pids()
        be_cpu0 = be.cpu(be_pids)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0 = machine_busy()
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - t0
        busy1 = machine_busy()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        be_cpu_s = (be.cpu(be_pids) - be_cpu0) / CLK_TCK
        if proc.returncode != 0:
            raise RuntimeError(f"fcgi_load failed: {proc.stderr.strip()}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        n = res["requests"]
        row = {
            "rep": rep,
            "backend": backend,
            "scenario": scenario,
            "conns": conns,
            "system": "direct",
            "order": 4,
            "url": res["target"],
            "duration_s": res["duration_s"],
            "requests": n,
            "rps": res["rps"],
            "mean_ms": res["mean_ms"],
            "p50_ms": res["p50_ms"],
            "p90_ms": res["p90_ms"],
            "p99_ms": res["p99_ms"],
            "max_ms": res["max_ms"],
            "bytes_per_response": res["bytes_per_response"],
            "errors": res["errors"] + res["stalled"] + (1 if n == 0 else 0),
            "error_detail": {"errors": res["errors"], "stalled": res["stalled"]},
            # Backend CPU covers the warm-up too; scale it to the measured share.
            "backend_cpu_us_per_req": (
                be_cpu_s * 1e6 / n * (res["duration_s"] / wall) if n else None
            ),
            "backend_cores": be_cpu_s / wall,
            "loadgen_cpu_s": round(
                (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 3
            ),
            "machine_busy": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self.emit(row)
        return row

    # -- the loop ------------------------------------------------------------------------

    def emit(self, row):
        self.out.write(json.dumps(row) + "\n")
        self.out.flush()

    def cells(self):
        cfg = self.cfg
        for backend in cfg["backends"]:
            conc = {"php": cfg["php_conc"], "fleet": cfg["fleet_conc"]}.get(
                backend, cfg["responder_conc"]
            )
            for scenario in cfg["scenarios"]:
                for c in conc:
                    if scenario == "10m" and c > cfg["max_conc_10m"]:
                        continue
                    yield backend, scenario, c

    def run(self):
        cfg = self.cfg
        cells = list(self.cells())
        total = len(cells) * cfg["reps"]
        done = 0
        started = time.monotonic()
        for rep in range(1, cfg["reps"] + 1):
            for backend, scenario, c in cells:
                done += 1
                rows = []
                previous = None
                for order, system in enumerate(("nginx", "ours", "ours", "nginx")):
                    # The second of two back-to-back runs of one system needs no warm-up:
                    # the run before it was the same load.
                    warm = previous == system
                    rows.append(self.measure_http(rep, backend, scenario, c, system, order, warm))
                    previous = system
                direct = self.measure_direct(rep, backend, scenario, c)
                nginx = [r for r in rows if r["system"] == "nginx"]
                ours = [r for r in rows if r["system"] == "ours"]
                ratio = sum(r["rps"] for r in ours) / max(1e-9, sum(r["rps"] for r in nginx))
                errs = sum(r["errors"] for r in rows) + direct["errors"]
                elapsed = time.monotonic() - started
                log(
                    f"[{done}/{total} {elapsed:5.0f}s] rep {rep} {backend:9} {scenario:6} c={c:<3} "
                    f"nginx {fmt_rps(nginx)} ours {fmt_rps(ours)} (x{ratio:.2f}) "
                    f"direct {direct['rps']:,.0f} rps"
                    + (f"  ERRORS {errs}" if errs else "")
                )
                for r in rows:
                    expected = EXPECTED_BYTES[scenario]
                    if r["requests"] and r["bytes_per_response"] < expected:
                        log(
                            f"    warning: {r['system']} answered {r['bytes_per_response']} bytes "
                            f"per response, expected at least {expected}"
                        )


def fmt_rps(rows):
    return "/".join(f"{r['rps']:,.0f}" for r in rows)


def main():
    cfg = json.load(open(sys.argv[1]))
    Matrix(cfg).run()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
