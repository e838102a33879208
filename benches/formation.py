#!/usr/bin/env python3
"""Cluster formation: time and total RSS for N role nodes in a full mesh (N = 50, 100) and in
requirements mode (N = 300), on this machine.

    cargo build --release && python3 benches/formation.py [--sizes full:50,full:100,requirements:300]

For each size: one port mapper, the beacon, then N `cluster start --role R` processes started
at once (roles cycle gate_manager, gate, data_contact, data_service). Formation ends when
every node has printed that its requirements are met and, in full-mesh mode, every node sees
all N-1 others plus the beacon as visible peers (followed through each node's
`cluster_events` by benches/dist_load.rs mesh-wait). Total RSS sums every node process
(beacon included) once formed, and their PSS (shared pages split among the processes that map
them: what the cluster really occupies), then the CPU all of them use in the next 5 s, when the
cluster should be idle. The goal in the issue: 100 nodes fully meshed and registered in
under 10 s.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_vs_beam import CLUSTER, COOKIE, Env, load_binary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES = ["gate_manager", "gate", "data_contact", "data_service"]
IDLE_WINDOW = 5


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    """Proportional set size: shared pages (the binary's text, libc) split among the processes
    that map them, so the sum over a cluster is what the cluster really occupies."""
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


EXTRA = []


def form(load, mesh, n):
    roles_file = os.path.join(tempfile.gettempdir(), f"roles-{mesh}.toml")
    text = open(os.path.join(ROOT, "roles.toml")).read()
    with open(roles_file, "w") as f:
        f.write(re.sub(r'mesh = "full"', f'mesh = "{mesh}"', text))
    env = Env()
    try:
        common = ["--cookie", COOKIE, "--epmd-port", str(env.port), "--no-epmd-start", "--roles", roles_file,
                  *EXTRA]
        beacon = env.spawn([CLUSTER, "start", "--name", "beacon1@127.0.0.1", "--role", "beacon", *common])
        for line in beacon.stdout:
            if "beacon ready" in line:
                break
        threading.Thread(target=beacon.stdout.read, daemon=True).start()
        threading.Thread(target=beacon.stderr.read, daemon=True).start()
        names = [f"{ROLES[i % 4]}{i // 4 + 1}@127.0.0.1" for i in range(n)]
        ready = threading.Semaphore(0)

        failed = []

        def watch(proc, name):
            # Read to the end: a node blocked on a full pipe would stall the run.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            said_ready = False
            for line in proc.stdout:
                if " ready" in line and not said_ready:
                    said_ready = True
                    ready.release()
            if not said_ready:
                failed.append(name)
                ready.release()

        t0 = time.monotonic()
        procs = []
        for i, name in enumerate(names):
            p = env.spawn([CLUSTER, "start", "--name", name, "--role", ROLES[i % 4], *common])
            procs.append(p)
            threading.Thread(target=watch, args=(p, name), daemon=True).start()
        for _ in names:
            if not ready.acquire(timeout=300):
                sys.exit("nodes did not become ready within 300 s")
        if failed:
            sys.exit(f"{len(failed)} nodes exited before they were ready: {', '.join(failed[:5])}")
        t_ready = time.monotonic() - t0
        t_mesh = None
        if mesh == "full":
            listing = os.path.join(tempfile.gettempdir(), "mesh-nodes.txt")
            with open(listing, "w") as f:
                f.write("\n".join(names))
            out = subprocess.run([load, "mesh-wait", "--name", "meshwatch@127.0.0.1", "--target", listing,
                                  "--count", str(n), "--epmd-port", str(env.port)],
                                 capture_output=True, text=True, timeout=600).stdout
            if "mesh complete" not in out:
                sys.exit(f"mesh-wait failed: {out}")
            t_mesh = time.monotonic() - t0
        total = sum(rss_kib(p.pid) for p in procs) + rss_kib(beacon.pid)
        pss = sum(pss_kib(p.pid) for p in procs) + pss_kib(beacon.pid)
        formed = max(t_ready, t_mesh or 0)
        # Once formed, the cluster should be idle: CPU over a few seconds, all nodes together.
        every = [*procs, beacon]
        before = sum(cpu_ticks(p.pid) for p in every)
        time.sleep(IDLE_WINDOW)  # a measurement window, not a wait for an event
        idle_cpu = (sum(cpu_ticks(p.pid) for p in every) - before) / os.sysconf("SC_CLK_TCK")
        mesh_text = f", full mesh {t_mesh:6.2f} s" if t_mesh else ""
        print(f"{mesh:<12} N={n:<4} registered+requirements met {t_ready:6.2f} s{mesh_text}"
              f"   formed {formed:6.2f} s   total RSS {total / 1024:7.1f} MiB ({total / 1024 / (n + 1):.1f} MiB/node)"
              f"   total PSS {pss / 1024:7.1f} MiB   idle CPU {idle_cpu:.2f} s over {IDLE_WINDOW} s")
    finally:
        env.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="full:50,full:100,requirements:300")
    ap.add_argument("--node-args", default="", help="extra arguments for every `cluster start`")
    args = ap.parse_args()
    EXTRA.extend(args.node_args.split())
    load = load_binary()
    for spec in args.sizes.split(","):
        mesh, n = spec.split(":")
        form(load, mesh, int(n))


if __name__ == "__main__":
    main()
