#!/usr/bin/env python3
"""Distribution benchmarks, side by side with BEAM in one run, printed as ratios.

    cargo build --release && python3 benches/dist_vs_beam.py [--msgs 500000] [--rtts 20000] [--runs 3]

Everything talks through one port mapper (`cluster epmd`, which real erl uses unchanged) on a
fresh port. Each side runs one node per OS process, two processes per test:

- throughput: a sender pushes N 64-byte binaries to a registered `sink` on another node, which
  answers `done` after the N-th; time from first send to `done`. Rust->Rust vs erl->erl.
- ping-pong: `{Self, <<64 bytes>>}` to a registered `echo` that sends it back; p50/p99 of
  round trips after 1000 warm-up trips. Rust->Rust vs erl->erl, Rust both as `cluster start`
  runs by default (threads poll their sockets briefly before sleeping, see src/net/spin.rs)
  and with spinning off; the raw TCP floor both blocking and polling.
- ping wall time: `cluster ping NODE` vs `erl -noshell -name .. -eval 'net_adm:ping(NODE)'`,
  whole process, median of --pings runs.
- idle RSS: a started, connected-to-nothing `cluster start` node vs `erl -noshell -name`.

The best of --runs is reported for throughput and ping-pong on both sides alike (these shared
machines are noisy; the best run is the least disturbed one).
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Honour CARGO_TARGET_DIR, as cargo does.
# CLUSTER_BIN picks another build (say, an older release, for a before/after in one run).
CLUSTER = os.environ.get("CLUSTER_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "cluster")
COOKIE = "bench"

ERL_RECEIVER = r"""
Sink = fun Sink() ->
    receive {start, From, N} ->
        Count = fun C(0) -> ok; C(K) -> receive _ -> C(K - 1) end end,
        Count(N), From ! done, Sink()
    end
end,
Echo = fun E() -> receive {From, M} -> From ! M, E() end end,
register(sink, spawn(Sink)),
register(echo, spawn(Echo)),
io:format("ready~n"),
receive stop -> ok end.
"""

ERL_THROUGHPUT = r"""
T = '%(target)s', N = %(n)d, Bin = <<0:512>>,
pong = net_adm:ping(T),
Start = erlang:monotonic_time(microsecond),
{sink, T} ! {start, self(), N},
Send = fun S(0) -> ok; S(K) -> {sink, T} ! Bin, S(K - 1) end,
Send(N),
receive done -> ok end,
Us = erlang:monotonic_time(microsecond) - Start,
io:format("throughput ~b msgs in ~.3f s = ~b msg/s~n", [N, Us / 1.0e6, round(N / (Us / 1.0e6))]),
halt().
"""

ERL_PINGPONG = r"""
T = '%(target)s', N = %(n)d, Msg = {self(), <<0:512>>},
pong = net_adm:ping(T),
Trip = fun() -> S = erlang:monotonic_time(nanosecond), {echo, T} ! Msg,
                receive _ -> erlang:monotonic_time(nanosecond) - S end end,
[Trip() || _ <- lists:seq(1, 1000)],
Rtts = lists:sort([Trip() || _ <- lists:seq(1, N)]),
P = fun(F) -> lists:nth(min(N, max(1, round(N * F))), Rtts) / 1000 end,
io:format("pingpong ~b round trips: p50 ~.1f us p99 ~.1f us~n", [N, P(0.5), P(0.99)]),
halt().
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_binary():
    out = subprocess.run(
        ["cargo", "bench", "--bench", "dist_load", "--no-run", "--message-format=json"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = json.loads(line)
        if m.get("executable") and m.get("target", {}).get("name") == "dist_load":
            return m["executable"]
    sys.exit("could not build benches/dist_load.rs")


def erl_cmd(name, port, eval_text, extra=()):
    return (["erl", "-noshell", "-name", name, "-setcookie", COOKIE, "-start_epmd", "false",
             *extra, "-eval", eval_text],
            dict(os.environ, ERL_EPMD_PORT=str(port)))


def wait_ready(proc, what):
    line = proc.stdout.readline()
    if "ready" not in line:
        sys.exit(f"{what} did not start: {line!r} {proc.stderr.read()!r}")


class Env:
    def __init__(self):
        self.port = free_port()
        self.procs = []
        self.spawn([CLUSTER, "epmd", "--port", str(self.port), "--address", "127.0.0.1"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        sys.exit("port mapper did not start")

    def spawn(self, cmd, env=None):
        p = subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()


def run_ok(cmd, env=None, timeout=600):
    done = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({done.returncode}): {done.stdout} {done.stderr}")
    return done.stdout


def parse_rate(text):
    return float(re.search(r"= (\d+) msg/s", text).group(1))


def parse_rtt(text):
    m = re.search(r"p50 ([\d.]+) us p99 ([\d.]+) us", text)
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--msgs", type=int, default=500_000)
    ap.add_argument("--rtts", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pings", type=int, default=15)
    args = ap.parse_args()
    if not os.path.exists(CLUSTER):
        sys.exit("build first: cargo build --release")
    load = load_binary()
    env = Env()
    try:
        # Receivers for both sides.
        rr = env.spawn([load, "receiver", "--name", "rrecv@127.0.0.1", "--epmd-port", str(env.port)])
        wait_ready(rr, "rust receiver")
        # The same receiver with spinning off (`cluster start --spin 0`), for the figure
        # without busy-waiting.
        nospin = dict(os.environ, DIST_LOAD_SPIN="0")
        rq = env.spawn([load, "receiver", "--name", "rquiet@127.0.0.1", "--epmd-port", str(env.port)], nospin)
        wait_ready(rq, "rust receiver without spinning")
        cmd, e = erl_cmd("erecv@127.0.0.1", env.port, ERL_RECEIVER)
        er = env.spawn(cmd, e)
        wait_ready(er, "erl receiver")

        rust_rates, erl_rates, rust_rtt, erl_rtt, quiet_rtt = [], [], [], [], []
        for i in range(args.runs):
            out = run_ok([load, "throughput", "--name", f"rsend{i}@127.0.0.1", "--target",
                          "rrecv@127.0.0.1", "--count", str(args.msgs), "--epmd-port", str(env.port)])
            rust_rates.append(parse_rate(out))
            cmd, e = erl_cmd(f"esend{i}@127.0.0.1", env.port,
                             ERL_THROUGHPUT % {"target": "erecv@127.0.0.1", "n": args.msgs})
            erl_rates.append(parse_rate(run_ok(cmd, e)))
            out = run_ok([load, "pingpong", "--name", f"rping{i}@127.0.0.1", "--target",
                          "rrecv@127.0.0.1", "--count", str(args.rtts), "--epmd-port", str(env.port)])
            rust_rtt.append(parse_rtt(out))
            out = run_ok([load, "pingpong", "--name", f"rquietping{i}@127.0.0.1", "--target",
                          "rquiet@127.0.0.1", "--count", str(args.rtts), "--epmd-port", str(env.port)],
                         nospin)
            quiet_rtt.append(parse_rtt(out))
            cmd, e = erl_cmd(f"eping{i}@127.0.0.1", env.port,
                             ERL_PINGPONG % {"target": "erecv@127.0.0.1", "n": args.rtts})
            erl_rtt.append(parse_rtt(run_ok(cmd, e)))

        rr_best, er_best = max(rust_rates), max(erl_rates)
        print(f"64-byte msgs   Rust->Rust {rr_best / 1e6:6.3f} M/s   erl->erl {er_best / 1e6:6.3f} M/s"
              f"   ratio {rr_best / er_best:5.2f}x  (best of {args.runs}: rust {[round(r) for r in rust_rates]},"
              f" erl {[round(r) for r in erl_rates]})")
        # The floors: plain sockets between two processes, no protocol at all; blocking (each
        # side sleeps in read, as a node that does not spin) and polling (each side spins).
        raw = env.spawn([load, "raw-echo"], nospin)
        raw_port = raw.stdout.readline().split()[1]
        raw_rtt = [parse_rtt(run_ok([load, "raw-pingpong", "--target", raw_port,
                                     "--count", str(args.rtts)], nospin)) for _ in range(args.runs)]
        raw_spin = env.spawn([load, "raw-echo"])
        spin_port = raw_spin.stdout.readline().split()[1]
        spin_rtt = [parse_rtt(run_ok([load, "raw-pingpong", "--target", spin_port,
                                      "--count", str(args.rtts)])) for _ in range(args.runs)]
        rp50, rp99 = min(rust_rtt)
        qp50, qp99 = min(quiet_rtt)
        ep50, ep99 = min(erl_rtt)
        fp50, fp99 = min(raw_rtt)
        sp50, sp99 = min(spin_rtt)
        print(f"ping-pong p50  Rust {rp50:6.1f} us   erl {ep50:6.1f} us   ratio {rp50 / ep50:5.2f}x")
        print(f"ping-pong p99  Rust {rp99:6.1f} us   erl {ep99:6.1f} us   ratio {rp99 / ep99:5.2f}x"
              f"  (runs: rust {rust_rtt}, erl {erl_rtt})")
        print(f"ping-pong, no spinning  Rust p50 {qp50:6.1f} us p99 {qp99:6.1f} us"
              f"   ratio to erl p50 {qp50 / ep50:5.2f}x p99 {qp99 / ep99:5.2f}x  (runs: {quiet_rtt})")
        print(f"ping-pong floors: raw TCP blocking p50 {fp50:.1f} us p99 {fp99:.1f} us,"
              f" polling p50 {sp50:.1f} us p99 {sp99:.1f} us")
        print(f"above the blocking floor at p50: Rust without spinning +{qp50 - fp50:.1f} us,"
              f" erl +{ep50 - fp50:.1f} us, ratio {(qp50 - fp50) / (ep50 - fp50):5.2f}x;"
              f" Rust spinning above the polling floor +{rp50 - sp50:.1f} us")

        # Ping wall time against a cluster node.
        target = env.spawn([CLUSTER, "start", "--name", "ptarget@127.0.0.1", "--cookie", COOKIE,
                            "--epmd-port", str(env.port), "--no-epmd-start"])
        target.stdout.readline()
        cw, ew = [], []
        for i in range(args.pings):
            t = time.perf_counter()
            run_ok([CLUSTER, "ping", "ptarget@127.0.0.1", "--cookie", COOKIE, "--epmd-port", str(env.port)])
            cw.append(time.perf_counter() - t)
            cmd, e = erl_cmd(f"pinger{i}@127.0.0.1", env.port,
                             "pong = net_adm:ping('ptarget@127.0.0.1'), halt().")
            t = time.perf_counter()
            run_ok(cmd, e)
            ew.append(time.perf_counter() - t)
        mc, me = statistics.median(cw), statistics.median(ew)
        print(f"ping wall      cluster ping {mc * 1e3:7.1f} ms   erl net_adm:ping {me * 1e3:7.1f} ms"
              f"   ratio {mc / me:5.3f}x  (median of {args.pings})")

        # Idle RSS.
        idle = env.spawn([CLUSTER, "start", "--name", "idle@127.0.0.1", "--cookie", COOKIE,
                          "--epmd-port", str(env.port), "--no-epmd-start"])
        idle.stdout.readline()
        cmd, e = erl_cmd("idle_erl@127.0.0.1", env.port, "io:format(\"ready~n\"), receive stop -> ok end.")
        idle_erl = env.spawn(cmd, e)
        wait_ready(idle_erl, "idle erl")
        time.sleep(2)  # both idle for the same time before reading RSS; not a correctness wait

        def rss_kib(pid):
            total = 0
            # The process and its children (BEAM's erl_child_setup), as the OS accounts them.
            pids = [pid] + [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
            for p in pids:
                for line in open(f"/proc/{p}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            return total
        rc, re_ = rss_kib(idle.pid), rss_kib(idle_erl.pid)
        print(f"idle RSS       cluster node {rc / 1024:6.1f} MiB   erl node {re_ / 1024:6.1f} MiB"
              f"   ratio {rc / re_:5.3f}x")
    finally:
        env.close()


if __name__ == "__main__":
    main()
