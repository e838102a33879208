#!/usr/bin/env python3
"""Side-by-side wall time of `cluster names` against `epmd -names`, on the same port mapper.

Both commands ask the same running port mapper (first a real OTP `epmd`, then `cluster epmd`)
while N fake nodes are registered. Runs alternate between the two commands so that machine
noise hits both alike; the script prints each median and the ratio cluster/epmd.

    cargo build --release && python3 benches/names_vs_epmd.py [--runs 200] [--nodes 5]

`cluster names` shows more than `epmd -names` (each node's type and role). Our port mapper
answers that in one reply (its NODES extension); against OTP's epmd, which does not know it,
`cluster names` falls back to NAMES and a PORT_PLEASE2 per node (N+2 connections where epmd
opens one).
"""
import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Honour CARGO_TARGET_DIR, as cargo does.
CLUSTER = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "cluster")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"\x00\x01n")
                if s.recv(4):
                    return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"port mapper on {port} did not come up")


def register(port, name, node_port):
    """ALIVE2_REQ; the returned socket holds the registration open."""
    s = socket.create_connection(("127.0.0.1", port))
    n = name.encode()
    extra = b"bench"
    body = b"x" + struct.pack(">HBBHHH", node_port, 77, 0, 6, 5, len(n)) + n
    body += struct.pack(">H", len(extra)) + extra
    s.sendall(struct.pack(">H", len(body)) + body)
    reply = s.recv(8)
    if not reply or reply[1] != 0:
        sys.exit(f"registration of {name} failed: {reply!r}")
    return s


def time_cmd(cmd, env):
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}")
    return elapsed


def bench(label, port, runs, nodes):
    regs = [register(port, f"bench{i}", 20000 + i) for i in range(nodes)]
    env = dict(os.environ, ERL_EPMD_PORT=str(port))
    epmd_cmd = ["epmd", "-port", str(port), "-names"]
    cluster_cmd = [CLUSTER, "names", "--epmd-port", str(port)]
    for _ in range(5):  # warm the page cache for both binaries
        time_cmd(epmd_cmd, env)
        time_cmd(cluster_cmd, env)
    e, c = [], []
    for _ in range(runs):
        e.append(time_cmd(epmd_cmd, env))
        c.append(time_cmd(cluster_cmd, env))
    for s in regs:
        s.close()
    me, mc = statistics.median(e), statistics.median(c)
    print(f"{label:<22} epmd -names {me * 1e3:7.3f} ms   cluster names {mc * 1e3:7.3f} ms"
          f"   ratio {mc / me:5.2f}x   (median of {runs}, {nodes} nodes)")
    return mc / me


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--nodes", type=int, default=5)
    args = ap.parse_args()
    if not os.path.exists(CLUSTER):
        sys.exit("build first: cargo build --release")

    procs = []
    try:
        port = free_port()
        procs.append(subprocess.Popen(["epmd", "-port", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until_up(port)
        bench("port mapper: OTP epmd", port, args.runs, args.nodes)

        port = free_port()
        procs.append(subprocess.Popen([CLUSTER, "epmd", "--port", str(port), "--address", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until_up(port)
        bench("port mapper: ours", port, args.runs, args.nodes)
    finally:
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
