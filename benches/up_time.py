#!/usr/bin/env python3
"""Time `cluster up` from launch to all-online (its "N nodes up" banner), for the repo's five
roles (5 nodes) and with `--per-role 10` (the beacon plus ten of each other role: 41 nodes)
and `--per-role 13` (53 nodes).

Each run gets a fresh HOME, a fresh port-mapper port and its own port mapper, which it stops
afterwards. Usage:

    cargo build --release && python3 benches/up_time.py --runs 3

CLUSTER_BIN=/path/to/cluster picks another build.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(os.environ.get("CLUSTER_BIN", os.path.join(os.path.dirname(__file__), "..", "target", "release", "cluster")))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one_run(per_role, expect):
    home = tempfile.mkdtemp(prefix="up-bench-")
    port = free_port()
    env = dict(os.environ, HOME=home, ERL_EPMD_PORT=str(port))
    for k in ("CLUSTER_COOKIE", "CLUSTER_ROLES", "RUST_LOG", "XDG_CACHE_HOME"):
        env.pop(k, None)
    args = [BIN, "up", "--per-role", str(per_role)]
    started = time.monotonic()
    p = subprocess.Popen(args, env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    took = None
    try:
        deadline = started + 180
        for line in p.stdout:
            if f"{expect} nodes up" in line:
                took = time.monotonic() - started
                break
            if time.monotonic() > deadline:
                break
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        subprocess.run([BIN, "epmd", "--kill", "--port", str(port)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if True:
        for label, per_role, n in [("5 nodes (repo roles)", 1, 5), ("41 nodes (--per-role 10)", 10, 41),
                                   ("53 nodes (--per-role 13)", 13, 53)]:
            times = [one_run(per_role, n) for _ in range(a.runs)]
            ok = [t for t in times if t is not None]
            print(f"{label}: launch to all-online, runs {['%.2f s' % t if t else 'FAILED' for t in times]}"
                  + (f", median {statistics.median(ok):.2f} s" if ok else ""))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
