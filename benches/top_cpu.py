#!/usr/bin/env python3
"""CPU used by `cluster top` while it watches a cluster of N nodes (default 50), and what its
polling costs the nodes.

    cargo build --release && python3 benches/top_cpu.py [--nodes 50] [--window 30] [--mesh full]

One port mapper, the beacon, then N `cluster start --role R` processes (roles cycle
gate_manager, gate, data_contact, data_service) on a fresh port. Once every node is ready:
1. `cluster top --once` must list all N+1 nodes (a check that top sees the whole cluster);
2. the nodes' own CPU is measured over the window with nobody watching;
3. `cluster top` runs full-screen under a pseudo-terminal (120x60, its output drained), and
   after a warm-up its CPU (utime+stime from /proc/PID/stat) is measured over the window,
   together with the nodes' CPU again;
4. `q` must end it with exit status 0.
The goal in the issue: top under 5% of one core while watching 50 nodes.
"""
import argparse
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_vs_beam import CLUSTER, COOKIE, Env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES = ["gate_manager", "gate", "data_contact", "data_service"]
WARM_UP = 6
TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


def start_cluster(env, roles_file, n):
    common = ["--cookie", COOKIE, "--epmd-port", str(env.port), "--no-epmd-start", "--roles", roles_file]
    beacon = env.spawn([CLUSTER, "start", "--name", "beacon1@127.0.0.1", "--role", "beacon", *common])
    for line in beacon.stdout:
        if "beacon ready" in line:
            break
    threading.Thread(target=beacon.stdout.read, daemon=True).start()
    threading.Thread(target=beacon.stderr.read, daemon=True).start()
    ready = threading.Semaphore(0)

    def watch(proc):
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        said = False
        for line in proc.stdout:
            if " ready" in line and not said:
                said = True
                ready.release()
        if not said:
            ready.release()

    procs = [beacon]
    for i in range(n):
        p = env.spawn([CLUSTER, "start", "--name", f"{ROLES[i % 4]}{i // 4 + 1}@127.0.0.1",
                       "--role", ROLES[i % 4], *common])
        procs.append(p)
        threading.Thread(target=watch, args=(p,), daemon=True).start()
    for _ in range(n):
        if not ready.acquire(timeout=300):
            sys.exit("nodes did not become ready within 300 s")
    dead = [p for p in procs if p.poll() is not None]
    if dead:
        sys.exit(f"{len(dead)} nodes exited")
    return procs, common


def nodes_cpu(procs, window):
    before = sum(cpu_ticks(p.pid) for p in procs)
    time.sleep(window)  # a measurement window, not a wait for an event
    return (sum(cpu_ticks(p.pid) for p in procs) - before) / TICK


def top_under_pty(common, procs, window):
    """Runs `cluster top` on a pseudo-terminal; returns (top CPU s, nodes CPU s, exit code)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.execv(CLUSTER, [CLUSTER, "top", *[a for a in common if a != "--no-epmd-start"]])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 120, 0, 0))
    seen = bytearray()
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                seen.extend(chunk[-4096:])

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        time.sleep(WARM_UP)  # let it connect to every node and poll each a few times
        top_before = cpu_ticks(pid)
        nodes_before = sum(cpu_ticks(p.pid) for p in procs)
        time.sleep(window)  # the measurement window
        top_cpu = (cpu_ticks(pid) - top_before) / TICK
        node_cpu = (sum(cpu_ticks(p.pid) for p in procs) - nodes_before) / TICK
        os.write(fd, b"q")
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
                break
            time.sleep(0.05)
        if status is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        return top_cpu, node_cpu, status
    finally:
        stop.set()
        reader.join(1)
        os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--window", type=float, default=30)
    ap.add_argument("--mesh", default="full", choices=["full", "requirements"])
    args = ap.parse_args()
    roles_file = os.path.join(tempfile.gettempdir(), f"roles-top-{args.mesh}.toml")
    text = open(os.path.join(ROOT, "roles.toml")).read()
    with open(roles_file, "w") as f:
        f.write(re.sub(r'mesh = "full"', f'mesh = "{args.mesh}"', text))
    env = Env()
    try:
        procs, common = start_cluster(env, roles_file, args.nodes)
        once = subprocess.run([CLUSTER, "top", "--once", *common[:-3], "--roles", roles_file],
                              capture_output=True, text=True, timeout=60, cwd=tempfile.gettempdir())
        rows = [line for line in once.stdout.splitlines() if re.match(r"^[> ]\S+@127\.0\.0\.1 ", line)]
        if once.returncode != 0 or len(rows) != args.nodes + 1:
            sys.exit(f"top --once showed {len(rows)} of {args.nodes + 1} nodes:\n{once.stdout}{once.stderr}")
        idle = nodes_cpu(procs, args.window)
        top_cpu, watched, status = top_under_pty(common, procs, args.window)
        w = args.window
        print(f"N={args.nodes + 1} nodes ({args.mesh} mesh), window {w:.0f} s")
        print(f"  cluster top:             {top_cpu:6.2f} s CPU = {100 * top_cpu / w:5.2f}% of one core")
        print(f"  the nodes, not watched:  {idle:6.2f} s CPU = {100 * idle / w:5.2f}% of one core (all together)")
        print(f"  the nodes, watched:      {watched:6.2f} s CPU = {100 * watched / w:5.2f}% of one core (all together)")
        print(f"  top exit status on q:    {status}")
        if status != 0:
            sys.exit("cluster top did not exit 0 on q")
    finally:
        env.close()


if __name__ == "__main__":
    main()
