#!/usr/bin/env python3
"""Runs the echo benchmark: echo servers side by side under the same loads, on this machine.

    bench/run_echo_bench.py            # full run: 3 repetitions, 2 s warm-up + 10 s per figure
    bench/run_echo_bench.py --quick    # smoke run: 1 repetition, 0.5 s + 1 s

Servers: the baseline (//bench:baseline_echo_server, a plain single-threaded edge-triggered epoll
server) always; netpoll's //examples:echo_server with --workers=1 and --workers=2 when that target
exists (otherwise they are skipped with a note); and any --server NAME='COMMAND {addr}' you add.

Configurations: ping-pong with 1, 100, 1,000 and 10,000 connections and 64-byte messages, 50
connections with 16 KiB messages, connect churn (10 connections in flight, 64 bytes each), and N
idle connections (100,000, or as many as RLIMIT_NOFILE allows) for memory per connection.

Method:
- Interleaved: repetition r runs every configuration on every server in turn (server A config 1,
  server B config 1, ..., server A config 2, ...), alternating the server order between
  repetitions; each figure is the median over the repetitions.
- Every measurement starts a fresh server (so its peak RSS belongs to that configuration alone),
  pinned to one CPU (taskset -c 0) with the load generator (//bench:echo_load) on the other (-c 1).
- echo_load samples the server's CPU time (/proc/PID/stat utime+stime) at the start and end of the
  measured window, giving requests per server CPU-second, and its memory (/proc/PID/status): RSS
  before the first connection, and peak RSS (VmHWM) at the end of the window, or RSS while the idle
  connections are held; (peak - before) / connections is the memory per connection.
- Shared machines: echo_load also reports how much CPU every other process used during the
  window. A full run waits (up to --wait-quiet s) for the machine to be quiet before each
  measurement, reruns a measurement that other processes disturbed anyway (--retry-noisy), and
  flags the ones still disturbed in the report.
- Descriptors: the script raises RLIMIT_NOFILE as far as the system lets it (servers and the load
  generator inherit it). Churn closes connections with SO_LINGER 0 (a RST), which leaves no
  TIME_WAIT behind, so the ephemeral port range never runs out; idle connections beyond ~90 % of
  the port range are spread over source addresses 127.0.0.x (see bench/echo_load.cc).

Output: a Markdown table on stdout (each figure with its ratio to the baseline), and under
bench/results/: echo-STAMP.md, echo-STAMP.csv (every run), echo-STAMP.json (runs + medians) and
echo-STAMP.png (requests/s by configuration, servers side by side, drawn from echo-STAMP.dat;
needs gnuplot: apt-get install gnuplot-nox). Binaries are built with ./bazelw build --config=opt.

Exit status: 0 if every run was clean; 1 if any run reported an error (a mismatch above all).
Only the Python standard library is used.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETPOLL_TARGET = "//examples:echo_server"
IDLE_WANTED = 100_000
# Other processes using more than this fraction of a CPU during a window make its figures suspect.
NOISY_OTHER_CPU = 0.10
RETRY_PAUSE_S = 5
# wait_quiet: the machine counts as quiet when all CPUs together are at most this busy.
QUIET_BUSY_FRACTION = 0.10


class Server:
    def __init__(self, name, argv, note=""):
        self.name = name
        self.argv = argv  # with {addr} placeholders
        self.note = note


def configs(idle_connections):
    """The configurations, in run order. rss: report memory per connection."""
    return [
        dict(key="pp1", label="1 conn, 64 B", mode="pingpong", connections=1, size=64),
        dict(key="pp100", label="100 conns, 64 B", mode="pingpong", connections=100, size=64),
        dict(key="pp1000", label="1,000 conns, 64 B", mode="pingpong", connections=1000,
             size=64, rss=True),
        dict(key="pp10000", label="10,000 conns, 64 B", mode="pingpong", connections=10000,
             size=64, rss=True),
        dict(key="pp50x16k", label="50 conns, 16 KiB", mode="pingpong", connections=50,
             size=16384),
        dict(key="churn", label="connect churn (10 in flight, 64 B)", mode="churn",
             connections=10, size=64),
        dict(key="idle", label=f"{idle_connections:,} idle conns", mode="idle",
             connections=idle_connections, size=64, rss=True),
    ]


def log(message):
    print(message, file=sys.stderr, flush=True)


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_WANTED * 2 + 1000
    try:
        with open("/proc/sys/fs/nr_open") as f:
            want = min(want, int(f.read()))
    except OSError:
        pass
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass  # not root, or a sandbox that refuses even root
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def bazel(args, startup, **kwargs):
    return subprocess.run(["./bazelw"] + startup + args, cwd=REPO, **kwargs)


def build(startup, no_build):
    """Builds the binaries; returns (bazel-bin path, netpoll echo_server path or None, notes)."""
    notes = []
    opts = ["--config=opt"]
    if not no_build:
        log("building //bench:baseline_echo_server //bench:echo_load (--config=opt) ...")
        r = bazel(["build"] + opts + ["--symlink_prefix=/", "//bench:baseline_echo_server",
                                      "//bench:echo_load"], startup)
        if r.returncode != 0:
            sys.exit("run_echo_bench: the build failed")
    info = bazel(["info"] + opts + ["bazel-bin"], startup, capture_output=True, text=True)
    if info.returncode != 0:
        sys.exit("run_echo_bench: bazel info failed:\n" + info.stderr)
    bin_dir = info.stdout.strip()
    netpoll = None
    query = bazel(["query", NETPOLL_TARGET], startup, capture_output=True, text=True)
    if query.returncode != 0:
        notes.append(f"netpoll skipped: {NETPOLL_TARGET} does not exist yet (bazel query found no "
                     "such target); only the baseline was measured.")
    else:
        ok = True
        if not no_build:
            log(f"building {NETPOLL_TARGET} (--config=opt) ...")
            ok = bazel(["build"] + opts + ["--symlink_prefix=/", NETPOLL_TARGET],
                       startup).returncode == 0
        path = os.path.join(bin_dir, "examples", "echo_server")
        if ok and os.access(path, os.X_OK):
            netpoll = path
        else:
            notes.append(f"netpoll skipped: {NETPOLL_TARGET} exists but did not build.")
    for binary in ("baseline_echo_server", "echo_load"):
        if not os.access(os.path.join(bin_dir, "bench", binary), os.X_OK):
            sys.exit(f"run_echo_bench: {bin_dir}/bench/{binary} is missing (drop --no-build)")
    return bin_dir, netpoll, notes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc, port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def stop(proc, timeout=15):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return "killed"
    return proc.returncode


def run_one(server, config, args, echo_load, log_dir, run_id):
    """One fresh server, one echo_load run. Returns a result dict."""
    port = free_port()
    addr = f"127.0.0.1:{port}"
    pin_server = ["taskset", "-c", args.server_cpus] if args.pin else []
    pin_load = ["taskset", "-c", args.load_cpus] if args.pin else []
    server_log = os.path.join(log_dir, f"{run_id}.server.log")
    load_log = os.path.join(log_dir, f"{run_id}.load.log")
    argv = pin_server + [a.replace("{addr}", addr) for a in server.argv]
    result = dict(server=server.name, config=config["key"], label=config["label"],
                  mode=config["mode"], connections=config["connections"], size=config["size"],
                  ok=False)
    with open(server_log, "w") as slog:
        proc = subprocess.Popen(argv, stdout=slog, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            if not wait_listening(proc, port, 15):
                result["failure"] = f"server did not listen on {addr} (see {server_log})"
                return result
            time.sleep(0.3)  # let the probe connection go and the server settle
            hold = args.idle_hold if config["mode"] == "idle" else args.duration
            load = pin_load + [
                echo_load, f"--addr={addr}", f"--mode={config['mode']}",
                f"--connections={config['connections']}", f"--size={config['size']}",
                f"--warmup={args.warmup}s", f"--duration={hold}s",
                f"--threads={args.load_threads}", f"--server_pid={proc.pid}", "--json"]
            try:
                run = subprocess.run(load, capture_output=True, text=True,
                                     timeout=args.warmup + hold + 300)
            except subprocess.TimeoutExpired:
                result["failure"] = "echo_load timed out"
                return result
            with open(load_log, "w") as f:
                f.write(" ".join(shlex.quote(a) for a in load) + "\n" + run.stdout + run.stderr)
            lines = [l for l in run.stdout.splitlines() if l.startswith("{")]
            if not lines:
                result["failure"] = (f"echo_load exited {run.returncode} without a result: "
                                     + run.stderr.strip()[-500:])
                return result
            data = json.loads(lines[-1])
            result.update(
                exit=run.returncode,
                human=[l for l in run.stdout.splitlines() if not l.startswith("{")][-1:],
                rate=data["rate"],
                p50_us=data["latency_ns"]["p50"] / 1e3,
                p99_us=data["latency_ns"]["p99"] / 1e3,
                p999_us=data["latency_ns"]["p999"] / 1e3,
                errors=data["errors"]["total"],
                mismatch=data["errors"]["mismatch"],
                stalled=data["errors"].get("stalled", 0),
                starved=data.get("starved", 0),
                seconds=data["seconds"],
                setup_seconds=data["setup_seconds"],
                ready=data["ready"],
                client_cpu_s=data["client_cpu_seconds"],
                other_cpu_s=data.get("other_cpu_seconds"),
                softirq_cpu_s=data.get("softirq_cpu_seconds"),
                kernel_threads_cpu_s=data.get("kernel_threads_cpu_seconds"),
                server_cpu_s=data["server"]["cpu_seconds"],
                per_server_cpu_s=data["server"]["requests_per_cpu_second"],
                bytes_per_conn=data["server"]["bytes_per_connection"],
                rss_before_kib=data["server"]["rss_before_kib"],
                hwm_end_kib=data["server"]["hwm_end_kib"],
                rss_end_kib=data["server"]["rss_end_kib"],
            )
            if run.returncode != 0:
                result["failure"] = f"echo_load exited {run.returncode}: " + \
                    " | ".join(run.stderr.strip().splitlines()[-3:])
        finally:
            status = stop(proc)
            result["server_exit"] = status
    if "failure" not in result:
        if status not in (0, -signal.SIGTERM):
            result["failure"] = f"server exited with {status} after SIGTERM (see {server_log})"
        else:
            result["ok"] = True
    return result


def machine_busy_ticks():
    """(busy, total) clock ticks of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:8]]
    user, nice, system, idle, iowait, irq, softirq = fields
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait


def wait_quiet(limit_s, at_least=0.0):
    """Waits (at least `at_least` s, at most `limit_s` s) until the machine has been at least
    90 % idle for 2 s, so that a measurement does not start in the middle of someone's build."""
    deadline = time.monotonic() + limit_s
    if at_least:
        time.sleep(at_least)
    waited = False
    while time.monotonic() < deadline:
        b0, t0 = machine_busy_ticks()
        time.sleep(2)
        b1, t1 = machine_busy_ticks()
        if t1 > t0 and (b1 - b0) / (t1 - t0) <= QUIET_BUSY_FRACTION:
            return
        if not waited:
            log(f"waiting up to {limit_s:.0f} s for the machine to be quiet "
                f"({100 * (b1 - b0) / max(1, t1 - t0):.0f}% busy)")
            waited = True


def noise(result):
    """Fraction of a CPU other processes used during the window (0 if unknown)."""
    if result.get("other_cpu_s") is None or not result.get("seconds"):
        return 0.0
    return result["other_cpu_s"] / result["seconds"]


def is_noisy(result):
    return result.get("ok") and result["mode"] != "idle" and noise(result) > NOISY_OTHER_CPU


def measure(server, cfg, args, echo_load, log_dir, run_id, started):
    """run_one after waiting for a quiet machine, rerun while other processes disturb it."""
    wait_quiet(args.wait_quiet)
    r = run_one(server, cfg, args, echo_load, log_dir, run_id)
    last = r
    for attempt in range(args.retry_noisy):
        if not is_noisy(last):
            break
        log(f"[{time.monotonic() - started:6.0f}s] {run_id}: other processes used "
            f"{last['other_cpu_s']:.2f} CPU-s of the {last['seconds']:.1f} s window; retrying")
        wait_quiet(max(args.wait_quiet, RETRY_PAUSE_S), at_least=RETRY_PAUSE_S)
        last = run_one(server, cfg, args, echo_load, log_dir, f"{run_id}-retry{attempt + 1}")
        if not last["ok"] or noise(last) < noise(r):
            r = last  # a failure always counts; else keep the quieter attempt
    return r


def median(values):
    values = [v for v in values if v is not None and v >= 0]
    return statistics.median(values) if values else None


METRICS = ["rate", "p50_us", "p99_us", "p999_us", "server_cpu_s", "per_server_cpu_s",
           "client_cpu_s", "other_cpu_s", "softirq_cpu_s", "bytes_per_conn", "seconds"]


def summarize(results, servers, cfgs):
    """Median of every metric per (config, server)."""
    out = []
    for cfg in cfgs:
        for server in servers:
            runs = [r for r in results if r["config"] == cfg["key"] and r["server"] == server.name]
            if not runs:
                continue
            row = dict(config=cfg["key"], label=cfg["label"], mode=cfg["mode"],
                       server=server.name, runs=len(runs),
                       failed=sum(1 for r in runs if not r["ok"]),
                       errors=sum(r.get("errors", 0) or 0 for r in runs),
                       mismatch=sum(r.get("mismatch", 0) or 0 for r in runs),
                       stalled=sum(r.get("stalled", 0) or 0 for r in runs),
                       starved=median([r.get("starved") for r in runs]))
            for m in METRICS:
                row[m] = median([r.get(m) for r in runs])
            out.append(row)
    return out


def fmt(value, digits=0):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def ratio(value, base):
    if value is None or base is None or base == 0:
        return ""
    return f" ({value / base:.2f}x)"


def markdown_table(summary, cfgs):
    head = ("| Configuration | Server | req/s | req per server CPU-s | p50 us | p99 us | p99.9 us "
            "| server CPU | client CPU | other CPU | RSS/conn (B) | errors |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cfg in cfgs:
        rows = [r for r in summary if r["config"] == cfg["key"]]
        base = next((r for r in rows if r["server"] == "baseline"), None)
        for r in rows:
            b = base or {}
            idle = cfg["mode"] == "idle"
            cpu_pct = (f"{100 * r['server_cpu_s'] / r['seconds']:.0f}%"
                       if r["server_cpu_s"] is not None and r["seconds"] and not idle else "")
            client_pct = (f"{100 * r['client_cpu_s'] / r['seconds']:.0f}%"
                          if r["client_cpu_s"] is not None and r["seconds"] and not idle else "")
            other_pct = (f"{100 * r['other_cpu_s'] / r['seconds']:.0f}%"
                         if r["other_cpu_s"] is not None and r["seconds"] and not idle else "")
            rss = ""
            if cfg.get("rss") and r["bytes_per_conn"] is not None:
                rss = fmt(r["bytes_per_conn"]) + ratio(r["bytes_per_conn"], b.get("bytes_per_conn"))
            errors = str(r["errors"])
            if r["mismatch"]:
                errors += f" (**{r['mismatch']} MISMATCH**)"
            if r["stalled"]:
                errors += f" ({r['stalled']} stalled)"
            if r["starved"]:
                errors += f"; {r['starved']:,.0f} starved"
            if r["failed"]:
                errors += f", {r['failed']}/{r['runs']} runs failed"
            if idle:
                cells = ["", "", "", "", ""]
            else:
                cells = [
                    fmt(r["rate"]) + ratio(r["rate"], b.get("rate")),
                    fmt(r["per_server_cpu_s"]) + ratio(r["per_server_cpu_s"],
                                                       b.get("per_server_cpu_s")),
                    fmt(r["p50_us"], 1) + ratio(r["p50_us"], b.get("p50_us")),
                    fmt(r["p99_us"], 1) + ratio(r["p99_us"], b.get("p99_us")),
                    fmt(r["p999_us"], 1) + ratio(r["p999_us"], b.get("p999_us")),
                ]
            lines.append("| " + " | ".join([cfg["label"], r["server"]] + cells +
                                           [cpu_pct, client_pct, other_pct, rss, errors]) + " |")
    return "\n".join(lines)


def chart(summary, servers, cfgs, png):
    """Two clustered bar charts (req/s; req per server CPU-s). Returns a note or None."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return ("no chart: gnuplot is not installed (apt-get install gnuplot-nox), then rerun "
                "or plot the CSV")
    load_cfgs = [c for c in cfgs if c["mode"] != "idle"]
    names = [s.name for s in servers if any(r["server"] == s.name for r in summary)]
    dat = png[:-4] + ".dat"
    with open(dat, "w") as f:
        f.write("config\t" + "\t".join(names) + "\t" + "\t".join(n + "_cpu" for n in names) + "\n")
        for c in load_cfgs:
            rates, per_cpu = [], []
            for n in names:
                r = next((x for x in summary if x["config"] == c["key"] and x["server"] == n), None)
                rates.append(f"{r['rate']:.0f}" if r and r["rate"] is not None else "NaN")
                per_cpu.append(f"{r['per_server_cpu_s']:.0f}"
                               if r and r["per_server_cpu_s"] is not None else "NaN")
            f.write(f"\"{c['label']}\"\t" + "\t".join(rates) + "\t" + "\t".join(per_cpu) + "\n")
    n = len(names)
    plot_rate = ", ".join(
        f"'{dat}' using {i + 2}:xtic(1) title '{name}'" if i == 0 else
        f"'' using {i + 2} title '{name}'" for i, name in enumerate(names))
    plot_cpu = ", ".join(
        f"'{dat}' using {n + i + 2}:xtic(1) title '{name}'" if i == 0 else
        f"'' using {n + i + 2} title '{name}'" for i, name in enumerate(names))
    script = f"""
set terminal pngcairo size 1300,900 font ",10"
set output '{png}'
set datafile separator "\\t"
set key autotitle columnhead
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set grid ytics
set xtics rotate by -15 scale 0
set format y "%.0s%c"
set yrange [0:*]
set multiplot layout 2,1 title "Echo benchmark ({platform.node()}, {datetime.date.today()})"
set title "requests (round trips; churn: connections) per second"
plot {plot_rate}
set title "requests per server CPU-second"
plot {plot_cpu}
unset multiplot
"""
    r = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        return "no chart: gnuplot failed: " + r.stderr.strip()[-300:]
    return None


def git_commit():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                       text=True)
    return r.stdout.strip() if r.returncode == 0 else "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 repetition, 0.5 s warm-up, 1 s per figure")
    p.add_argument("--repetitions", type=int, help="repetitions (default 3; --quick: 1)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up (default 2; --quick: 0.5)")
    p.add_argument("--duration", type=float, help="measured seconds (default 10; --quick: 1)")
    p.add_argument("--idle-hold", type=float, help="seconds idle connections are held "
                   "before memory is read (default 2; --quick: 0.5)")
    p.add_argument("--configs", help="comma-separated subset of: pp1,pp100,pp1000,pp10000,"
                   "pp50x16k,churn,idle")
    p.add_argument("--servers", help="comma-separated subset of server names to run")
    p.add_argument("--server", action="append", default=[], metavar="NAME=COMMAND",
                   help="an extra server; COMMAND contains {addr} (e.g. "
                   "go-echo='/tmp/echo -addr {addr}')")
    p.add_argument("--server-cpus", default="0", help="taskset CPU list for servers (0)")
    p.add_argument("--load-cpus", default="1", help="taskset CPU list for echo_load (1)")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    p.add_argument("--load-threads", type=int, default=1, help="echo_load threads (1)")
    p.add_argument("--retry-noisy", type=int, metavar="N",
                   help="rerun a measurement up to N times (after a pause) when other processes "
                   "used more than 10%% of a CPU during it, keeping the quietest "
                   "(default 2; --quick: 0)")
    p.add_argument("--wait-quiet", type=float, metavar="SECONDS",
                   help="before each measurement wait up to SECONDS for the machine to be at "
                   "least 90%% idle for 2 s (default 120; --quick: 0)")
    p.add_argument("--output-base", help="Bazel --output_base to build in")
    p.add_argument("--no-build", action="store_true", help="use the binaries already built")
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    args = p.parse_args()
    args.repetitions = args.repetitions or (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)
    args.duration = args.duration or (1.0 if args.quick else 10.0)
    args.idle_hold = args.idle_hold or (0.5 if args.quick else 2.0)
    if args.retry_noisy is None:
        args.retry_noisy = 0 if args.quick else 2
    if args.wait_quiet is None:
        args.wait_quiet = 0.0 if args.quick else 120.0

    notes = []
    if args.pin and not shutil.which("taskset"):
        notes.append("taskset not found (util-linux): processes were not pinned.")
        args.pin = False
    if args.pin and os.cpu_count() and os.cpu_count() < 2:
        notes.append("one CPU only: processes were not pinned.")
        args.pin = False

    startup = [f"--output_base={args.output_base}"] if args.output_base else []
    bin_dir, netpoll, build_notes = build(startup, args.no_build)
    notes += build_notes

    servers = [Server("baseline", [os.path.join(bin_dir, "bench", "baseline_echo_server"),
                                   "--addr={addr}"])]
    if netpoll:
        servers.append(Server("netpoll-1w", [netpoll, "--addr={addr}", "--workers=1"]))
        servers.append(Server("netpoll-2w", [netpoll, "--addr={addr}", "--workers=2"]))
    for spec in args.server:
        name, _, command = spec.partition("=")
        if not name or "{addr}" not in command:
            sys.exit(f"run_echo_bench: --server {spec!r}: expected NAME='COMMAND ... {{addr}}'")
        servers.append(Server(name, shlex.split(command)))
    if args.servers:
        wanted = set(args.servers.split(","))
        servers = [s for s in servers if s.name in wanted]
    if not servers:
        sys.exit("run_echo_bench: no server to run")

    fd_limit = raise_fd_limit()
    idle = min(IDLE_WANTED, fd_limit - 100)
    if idle < IDLE_WANTED:
        notes.append(
            f"idle connections capped at {idle:,}: RLIMIT_NOFILE is {fd_limit:,} and could not "
            f"be raised (the server needs one descriptor per connection, as does echo_load).")
    cfgs = configs(idle)
    if args.configs:
        wanted = args.configs.split(",")
        unknown = set(wanted) - {c["key"] for c in cfgs}
        if unknown:
            sys.exit(f"run_echo_bench: unknown configs {sorted(unknown)}")
        cfgs = [c for c in cfgs if c["key"] in wanted]

    echo_load = os.path.join(bin_dir, "bench", "echo_load")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = tempfile.mkdtemp(prefix=f"echo-bench-{stamp}-")
    for note in notes:
        log("NOTE: " + note)
    log(f"servers: {', '.join(s.name for s in servers)}; {args.repetitions} repetition(s); "
        f"warm-up {args.warmup} s, window {args.duration} s; logs in {log_dir}")

    results = []
    started = time.monotonic()
    interrupted = False
    try:
        for rep in range(args.repetitions):
            order = servers if rep % 2 == 0 else list(reversed(servers))
            for cfg in cfgs:
                for server in order:
                    run_id = f"r{rep + 1}-{cfg['key']}-{server.name}"
                    r = measure(server, cfg, args, echo_load, log_dir, run_id, started)
                    r["repetition"] = rep + 1
                    results.append(r)
                    if r["ok"]:
                        log(f"[{time.monotonic() - started:6.0f}s] {run_id}: " +
                            (r["human"][0] if r.get("human") else ""))
                    else:
                        log(f"[{time.monotonic() - started:6.0f}s] {run_id}: FAILED: "
                            f"{r.get('failure')}")
    except KeyboardInterrupt:
        interrupted = True
        notes.append(f"interrupted by the user after {len(results)} measurement(s); the "
                     "figures below use only those.")
        log("interrupted: writing the results measured so far")
        if not results:
            return 130

    summary = summarize(results, servers, cfgs)
    table = markdown_table(summary, cfgs)
    os.makedirs(args.results_dir, exist_ok=True)
    base = os.path.join(args.results_dir, f"echo-{stamp}")
    chart_note = chart(summary, servers, cfgs, base + ".png")
    if chart_note:
        notes.append(chart_note)
    failed = [r for r in results if not r["ok"]]
    noisy = [r for r in results if is_noisy(r)]
    if noisy:
        notes.append(
            f"{len(noisy)} of {len(results)} runs shared the machine: other processes used more "
            f"than {NOISY_OTHER_CPU:.0%} of a CPU during the measured window (column 'other CPU'); "
            "those figures are distorted. Rerun on a quiet machine.")

    meta = dict(
        date=datetime.datetime.now().isoformat(timespec="seconds"), commit=git_commit(),
        host=platform.node(), kernel=platform.release(), cpu=cpu_model(), cpus=os.cpu_count(),
        repetitions=args.repetitions, warmup_s=args.warmup, duration_s=args.duration,
        idle_hold_s=args.idle_hold, pinned=args.pin, server_cpus=args.server_cpus,
        load_cpus=args.load_cpus, load_threads=args.load_threads, fd_limit=fd_limit,
        servers={s.name: s.argv for s in servers}, notes=notes, quick=args.quick)
    md = [f"# Echo benchmark, {meta['date']}", "",
          f"Commit {meta['commit']}, {meta['cpu']} x {meta['cpus']}, Linux {meta['kernel']}. "
          f"{args.repetitions} repetition(s), median shown; {args.warmup} s warm-up + "
          f"{args.duration} s measured per figure (idle: held {args.idle_hold} s). "
          + (f"Servers pinned to CPU {args.server_cpus}, echo_load ({args.load_threads} thread) "
             f"to CPU {args.load_cpus}." if args.pin else "Not pinned."),
          "", "Ratios in parentheses are to the baseline server in the same configuration. "
          "req/s is round trips per second (churn: connections opened, echoed and closed per "
          "second); server CPU and client CPU are the fraction of the measured window each "
          "process was on a CPU (user + system, which includes the kernel's loopback TCP "
          "processing done in its context: the CSV/JSON give that softirq time as softirq_cpu_s), "
          "and "
          "other CPU what all other processes on the machine used in that window (noise; the "
          "kernel's own threads, ksoftirqd above all, are left out: they mostly run the "
          "benchmark's deferred network processing); "
          "RSS/conn is (peak RSS at the end of the window, or RSS while "
          "idle, minus RSS before the first connection) / connections. errors sums every run's "
          "connect failures, resets, unexpected EOFs, mismatches and stalls (a message unanswered "
          "for over 1 s and 20 times the expected latency, the larger of the mean and connections / "
          "throughput); starved is the median number of live "
          "connections that completed no round trip in the whole window, a fairness figure "
          "rather than an error.", "", table, ""]
    if notes:
        md += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    if failed:
        md += ["Failed runs:", ""] + [f"- r{r['repetition']} {r['config']} {r['server']}: "
                                      f"{r.get('failure')}" for r in failed] + [""]
    if not chart_note:
        md += [f"![requests per second](echo-{stamp}.png)", ""]
    with open(base + ".md", "w") as f:
        f.write("\n".join(md))
    with open(base + ".json", "w") as f:
        json.dump(dict(meta=meta, medians=summary, runs=results), f, indent=1)
    fields = ["repetition", "config", "server", "mode", "connections", "size", "ok", "rate",
              "p50_us", "p99_us", "p999_us", "server_cpu_s", "per_server_cpu_s", "client_cpu_s",
              "other_cpu_s", "softirq_cpu_s", "kernel_threads_cpu_s",
              "bytes_per_conn", "rss_before_kib", "hwm_end_kib", "rss_end_kib", "seconds",
              "setup_seconds", "ready", "errors", "mismatch", "stalled", "starved", "exit",
              "server_exit", "failure"]
    with open(base + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(results)

    print("\n".join(md))
    print(f"\nwritten: {base}.md .csv .json" + ("" if chart_note else " .png"))
    if failed:
        log(f"run_echo_bench: {len(failed)} run(s) FAILED; logs in {log_dir}")
        if any(r.get("mismatch") for r in results):
            log("run_echo_bench: *** ECHO MISMATCHES were reported: a server returned wrong "
                "bytes ***")
        return 1
    shutil.rmtree(log_dir, ignore_errors=True)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
