#!/usr/bin/env python3
"""The data tier against mnesia, side by side in one run on one machine: durable writes/s,
replica lag, a snapshot's transfer rate, and a replica's catch-up after a restart.

    cargo build --release && python3 benches/data_vs_mnesia.py [--quick]

Each side has 3 nodes: ours a data_contact dc1 (the writer) and two data_services ds1, ds2
(plus the beacon they need); mnesia three erl nodes mn1 (where writes are issued) and mn2,
mn3, with `disc_copies` tables on all three. One port mapper (`cluster epmd`) on a fresh
loopback port serves both sides. A client erl node (the "driver", benches/data_bench.erl,
compiled at run time) issues the requests; every value is a 100-byte binary unless said.

1. Durable writes/s: --clients processes (64) each put one after the other for --seconds
   (5), unique keys; acks counted over the whole run, best of --runs.
   Ours: `{put, B, K, V}` to dc1's `data` from the driver; acked once fsynced (group commit).
   Mnesia: `mnesia:sync_transaction(fun() -> mnesia:write(R) end)`, acked once all three
   nodes have logged it, measured twice: clients on mn1 itself (no client hop: mnesia's best
   case), and clients on the driver, each write an `erpc:call` to mn1 (the client hop ours
   has). Note what "durable" means on each side: ours fsyncs the writer's store before it
   acks, and replicates after; mnesia's synced log append (`disk_log:log`) waits for all
   three nodes but fsyncs none of them.
2. Replica lag, one write at a time (--lag-samples of them, --gap-ms apart), on both
   replicas. Ours: before each put, an observer process per replica on the driver sends
   `{get, <<"lag">>, K, V}` (V the version the put will get) and then a `status` call, whose
   answer proves the get waits on the replica before the put exists; T0 = the put's ack
   arriving at the driver, T1 = the replica's answer (sent once it has applied V) arriving
   at the driver. Mnesia: a proxy on mn1 does `mnesia:dirty_write` and stamps T0 when it
   returns; a `mnesia:subscribe` process on each replica stamps T1 when the write event
   arrives (after the record is in the replica's table). Both stamps also travel to the
   driver and are stamped again there on arrival, so mnesia has two figures: "client node"
   (the same path as ours: writer -> driver for T0, replica -> driver for T1) and "on its
   nodes" (no hop at either end). All stamps are os:system_time(microsecond) on one host;
   nothing is subtracted, so a sample is negative when the replica's word beats the ack
   (counted). The writes' own call-to-ack times are printed beside.
3. Snapshot: --snapshot-mb (1024) values of 1 MiB are put into dc1 (8 at a time; the fill
   time is printed), then a fresh data_service ds3 starts; the time from spawning it until
   its status says `following` at dc1's head (polled every 5 ms from the driver). The
   snapshot holds everything dc1 has (the earlier tests' values too; counted). Compared with
   the raw loopback TCP rate of a Python socket pair moving as many bytes in this run, and,
   for reference, the disk writing them with one fsync at the end.
4. Restart: ds1 gets SIGTERM, --restart-writes (100000) puts go to dc1 (--clients at a
   time), ds1 starts again on its store; the time from spawning it until its status says
   `following` with lag_versions 0 at dc1's head, and whether it resumed (status `resumes`
   1, `snapshots` 0) or took a snapshot. It runs before 3, so that it times catching up on
   those writes rather than ds1 re-checking a gigabyte store when it starts.

Headline ratios are always taken against mnesia's better figure. Every node runs as
`cluster start` runs by default. --quick: a smoke run (64 MB snapshot, 10k restart writes,
fewer samples, 2 s throughput). CLUSTER_BIN picks another build. Every process the script
starts is stopped by its pid, on failure too, and its temp dir removed (--keep keeps it).
"""
import argparse
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_vs_beam import CLUSTER, free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
COOKIE = "bench"
HOST = "127.0.0.1"
MIB = 1 << 20


def node(n):
    return f"{n}@{HOST}"


def busy_cpu_s():
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq)."""
    f = open("/proc/stat").readline().split()[1:]
    return sum(int(x) for x in (f[0], f[1], f[2], f[5], f[6])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s():
    """CPU seconds of this script and of the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_of(proc):
    """CPU seconds (user + system) of a running child."""
    try:
        f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(len(s) * p) - 1))]


class Bench:
    """The processes of one run, their logs and the temp dir; all stopped by pid on close."""

    def __init__(self, keep, base=None):
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="data_vs_mnesia.", dir=base)
        self.logs = os.path.join(self.tmp, "logs")
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.logs)
        os.makedirs(self.home)
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("CLUSTER_") and k not in ("ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS")}
        self.env.update(HOME=self.home, ERL_EPMD_PORT=str(self.port))
        self.procs = {}  # name -> Popen
        self.files = []
        self.driver = None

    def spawn(self, name, cmd, stdin=None):
        out = open(os.path.join(self.logs, f"{name}.out"), "a")
        err = open(os.path.join(self.logs, f"{name}.err"), "a")
        self.files += [out, err]
        p = subprocess.Popen(cmd, env=self.env, cwd=self.tmp, stdin=stdin or subprocess.DEVNULL,
                             stdout=out if stdin is None else subprocess.PIPE, stderr=err,
                             text=True)
        self.procs[name] = p
        return p

    def log(self, name, which="out"):
        try:
            return open(os.path.join(self.logs, f"{name}.{which}")).read()
        except OSError:
            return ""

    def wait_line(self, name, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log(name) or text in self.log(name, "err"):
                return
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited ({self.procs[name].returncode}) before saying {text!r}")
            time.sleep(0.02)
        raise RuntimeError(f"{name} did not say {text!r} within {timeout} s")

    def stop(self, name, timeout=20):
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def close(self, failed):
        if self.driver:
            self.driver.close()
        for name in reversed(list(self.procs)):
            self.stop(name)
        # A port mapper a node may have started as a daemon despite --no-epmd-start.
        subprocess.run([CLUSTER, "epmd", "--kill", "--port", str(self.port)], env=self.env,
                       capture_output=True, timeout=10)
        for f in self.files:
            f.close()
        if failed:
            for name in self.procs:
                for which in ("out", "err"):
                    text = self.log(name, which).strip().splitlines()[-15:]
                    if text:
                        print(f"--- {name}.{which} (last lines)", file=sys.stderr)
                        print("\n".join(text), file=sys.stderr)
        if self.keep:
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- nodes ----

    def erl(self, name, extra=(), stdin=None, eval_text='io:format("ready~n")'):
        cmd = ["erl", "-noshell", "-name", node(name), "-setcookie", COOKIE, "-start_epmd", "false",
               "-kernel", "inet_dist_use_interface", "{127,0,0,1}",
               "-pa", os.path.join(self.tmp, "ebin"), *extra, "-eval", eval_text]
        return self.spawn(name, cmd, stdin)

    def cluster(self, name, role, data_dir=None, tag=None):
        cmd = [CLUSTER, "--epmd-port", str(self.port), "--roles", os.path.join(ROOT, "roles.toml"),
               "start", "--role", role, "--name", node(name), "--cookie", COOKIE,
               "--no-epmd-start"]
        if role != "beacon":
            cmd += ["--beacon", node("beacon1"), "--data-dir", data_dir]
        return self.spawn(tag or name, cmd)


class Driver:
    """The client erl node: one Erlang term a line in, one RESULT/ERROR line out."""

    def __init__(self, bench):
        self.p = bench.erl("driver", ["-hidden"], stdin=subprocess.PIPE,
                           eval_text="data_bench:driver()")
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._expect("ready", 30)

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _expect(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"the driver did not answer within {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("the driver exited")
            if line.startswith(prefix) or line.startswith("ERROR"):
                return line

    def send(self, term):
        self.p.stdin.write(term + ".\n")
        self.p.stdin.flush()

    def result(self, timeout):
        line = self._expect("RESULT", timeout)
        if line.startswith("ERROR"):
            raise RuntimeError(f"driver: {line}")
        out = {}
        for item in line.split()[1:]:
            k, v = item.split("=", 1)
            out[k] = parse_value(v)
        return out

    def call(self, term, timeout=120):
        self.send(term)
        return self.result(timeout)

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass


def parse_value(v):
    if v == "-":
        return []
    if "," in v:
        return [int(x) for x in v.split(",")]
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def atom(n):
    return f"'{node(n)}'"


def raw_tcp_rate(nbytes):
    """Bytes/s of one loopback TCP connection moving nbytes (1 MiB sends, a receiver thread)."""
    srv = socket.socket()
    srv.bind((HOST, 0))
    srv.listen(1)
    got = [0]

    def receive():
        c, _ = srv.accept()
        c.settimeout(120)
        buf = bytearray(MIB)
        view = memoryview(buf)
        while True:
            n = c.recv_into(view)
            if n == 0:
                break
            got[0] += n
        c.close()

    t = threading.Thread(target=receive)
    t.start()
    srv.settimeout(120)
    s = socket.create_connection(srv.getsockname(), timeout=120)
    chunk = os.urandom(MIB)
    start = time.perf_counter()
    sent = 0
    while sent < nbytes:
        s.sendall(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    t.join(120)
    took = time.perf_counter() - start
    s.close()
    srv.close()
    if got[0] != sent:
        raise RuntimeError(f"raw TCP: sent {sent}, received {got[0]}")
    return sent / took


def disk_rate(path, nbytes):
    """Bytes/s writing nbytes to a new file in 1 MiB writes with one fsync at the end."""
    chunk = os.urandom(MIB)
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(nbytes // MIB):
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    took = time.perf_counter() - start
    os.unlink(path)
    return nbytes / took


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=None, help="per throughput run [5; quick 2]")
    ap.add_argument("--runs", type=int, default=None, help="throughput runs per side [2; quick 1]")
    ap.add_argument("--lag-samples", type=int, default=None, help="[2000; quick 300]")
    ap.add_argument("--gap-ms", type=int, default=2)
    ap.add_argument("--snapshot-mb", type=int, default=None, help="[1024; quick 64]")
    ap.add_argument("--restart-writes", type=int, default=None, help="[100000; quick 10000]")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, stores)")
    ap.add_argument("--tmp-dir", help="where the stores go [the system's temp dir]; /dev/shm "
                    "takes the disk out of the figures")
    args = ap.parse_args()
    q = args.quick
    seconds = args.seconds or (2 if q else 5)
    runs = args.runs or (1 if q else 2)
    lag_n = args.lag_samples or (300 if q else 2000)
    snap_mb = args.snapshot_mb or (64 if q else 1024)
    restart_n = args.restart_writes or (10_000 if q else 100_000)
    if not os.path.exists(CLUSTER):
        sys.exit(f"build first: cargo build --release ({CLUSTER} missing)")

    def on_term(*_):
        raise SystemExit("terminated")

    signal.signal(signal.SIGTERM, on_term)
    load_before = os.getloadavg()[0]
    busy0, own0, wall0 = busy_cpu_s(), own_cpu_s(), time.monotonic()
    b = Bench(args.keep, args.tmp_dir)
    failed = True
    try:
        ebin = os.path.join(b.tmp, "ebin")
        os.makedirs(ebin)
        subprocess.run(["erlc", "-o", ebin, os.path.join(HERE, "data_bench.erl")], check=True,
                       timeout=120)
        b.spawn("epmd", [CLUSTER, "epmd", "--port", str(b.port), "--address", HOST])
        b.wait_line("epmd", "listening", 10)

        # Ours.
        b.cluster("beacon1", "beacon")
        b.wait_line("beacon1", "beacon ready", 30)
        dirs = {n: os.path.join(b.tmp, n) for n in ("dc1", "ds1", "ds2", "ds3")}
        b.cluster("dc1", "data_contact", dirs["dc1"])
        b.wait_line("dc1", f"{node('dc1')} ready", 30)
        for n in ("ds1", "ds2"):
            b.cluster(n, "data_service", dirs[n])
        for n in ("ds1", "ds2"):
            b.wait_line(n, f"{node(n)} ready", 30)
        # Mnesia.
        for n in ("mn1", "mn2", "mn3"):
            d = os.path.join(b.tmp, n)
            os.makedirs(d)
            b.erl(n, ["-mnesia", "dir", f'"{d}"'])
        for n in ("mn1", "mn2", "mn3"):
            b.wait_line(n, "ready", 30)
        d = b.driver = Driver(b)
        d.call(f"{{connect, [{atom('dc1')}, {atom('ds1')}, {atom('ds2')}]}}", 30)
        vs = d.call("versions", 30)
        d.call(f"{{mnesia_setup, [{atom('mn1')}, {atom('mn2')}, {atom('mn3')}]}}", 120)
        # Replicas of an empty writer: their phase before any write (noted below), then one
        # write, which must bring them to `following`.
        empty_phase = {n: d.call(f"{{status, {atom(n)}}}", 30)["phase"] for n in ("ds1", "ds2")}
        d.call(f"{{fill, {atom('dc1')}, <<\"warm\">>, 1, 100, 1}}", 30)
        for n in ("ds1", "ds2"):
            d.call(f"{{catchup, {atom(n)}, {atom('dc1')}, 10000}}", 30)

        # 1. Durable writes/s.
        value_bytes = 100  # values put into dc1, for the snapshot's size
        ours, m_local, m_remote = [], [], []
        budget = seconds + 120
        for run in range(runs):
            r = d.call(f"{{tput_ours, {run}, {atom('dc1')}, {args.clients}, {int(seconds * 1000)}, 100}}", budget)
            ours.append(r)
            value_bytes += r["ops"] * 100
            m_local.append(d.call(f"{{tput_mnesia_local, {run}, {atom('mn1')}, {args.clients}, "
                                  f"{int(seconds * 1000)}, 100}}", budget))
            m_remote.append(d.call(f"{{tput_mnesia_remote, {100 + run}, {atom('mn1')}, {args.clients}, "
                                   f"{int(seconds * 1000)}, 100}}", budget))
        errors = sum(r["errors"] for r in ours + m_local + m_remote)

        def rate(rs):
            return max(r["ops"] / (r["us"] / 1e6) for r in rs)

        w_ours, w_local, w_remote = rate(ours), rate(m_local), rate(m_remote)

        # 2. Replica lag.
        lag_budget = lag_n * 0.1 + 60
        r = d.call(f"{{lag_ours, {atom('dc1')}, [{atom('ds1')}, {atom('ds2')}], {lag_n}, {args.gap_ms}}}", lag_budget)
        value_bytes += lag_n * 100
        lag_ours = r.get(f"lag_{node('ds1')}", []) + r.get(f"lag_{node('ds2')}", [])
        lag_skipped = r["skipped"]
        ack_ours = r["ack"]
        r = d.call(f"{{lag_mnesia, {atom('mn1')}, [{atom('mn2')}, {atom('mn3')}], {lag_n}, {args.gap_ms}}}", lag_budget)
        lag_m_here = r[f"here_{node('mn2')}"] + r[f"here_{node('mn3')}"]
        lag_m_local = r[f"local_{node('mn2')}"] + r[f"local_{node('mn3')}"]
        ack_m = r["ack"]
        if not lag_ours:
            raise RuntimeError("no lag samples on our side")

        # 4 (before the fill, so that it times catching up on the writes, not re-checking a
        # gigabyte): restart.
        b.stop("ds1")
        if b.procs["ds1"].returncode is None:
            raise RuntimeError("ds1 did not stop")
        r = d.call(f"{{fill, {atom('dc1')}, <<\"restart\">>, {restart_n}, 100, {args.clients}}}", 1800)
        value_bytes += restart_n * 100
        restart_fill_s = r["us"] / 1e6
        d.send(f"{{catchup, {atom('ds1')}, {atom('dc1')}, 600000}}")
        time.sleep(0.05)  # let the driver begin polling (its first answers are "not up")
        t0 = time.time()
        b.cluster("ds1", "data_service", dirs["ds1"], tag="ds1-again")
        r = d.result(660)
        restart_s = r["end_us"] / 1e6 - t0
        restart = r
        resumed_log = "resuming from version" in b.log("ds1-again", "err")

        # 3. Snapshot.
        r = d.call(f"{{fill, {atom('dc1')}, <<\"snap\">>, {snap_mb}, {MIB}, 8}}", 1800)
        fill_s = r["us"] / 1e6
        value_bytes += snap_mb * MIB
        d.send(f"{{catchup, {atom('ds3')}, {atom('dc1')}, 900000}}")
        time.sleep(0.05)
        dc1_cpu0 = cpu_of(b.procs["dc1"])
        t0 = time.time()
        b.cluster("ds3", "data_service", dirs["ds3"])
        r = d.result(960)
        snap_cpu = (cpu_of(b.procs["dc1"]) - dc1_cpu0, cpu_of(b.procs["ds3"]))
        snap_s = r["end_us"] / 1e6 - t0
        snap_transfer_s = (r["end_us"] - r["first_snapshot_us"]) / 1e6 if r["first_snapshot_us"] else None
        snap = r
        nbytes = snap_mb * MIB
        tcp = raw_tcp_rate(nbytes)
        disk = disk_rate(os.path.join(b.tmp, "disk.test"), nbytes)
        def on_disk(n):  # allocated, not apparent: redb's file may be sparse
            return os.stat(os.path.join(dirs[n], "store.redb")).st_blocks * 512 / MIB

        store_mb, store3_mb = on_disk("dc1"), on_disk("ds3")

        # Sanity: every replica holds what the writer holds.
        st = {n: d.call(f"{{status, {atom(n)}}}", 30) for n in ("dc1", "ds1", "ds2", "ds3")}
        consistent = all(st[n]["entries"] == st["dc1"]["entries"] and st[n]["version"] == st["dc1"]["version"]
                         for n in st)

        # The table.
        print(f"data tier vs mnesia {vs['mnesia']} (OTP {vs['otp']}): 3 nodes a side (1 writer + 2 replicas), "
              f"one machine ({os.cpu_count()} cores, load average {load_before:.2f} before, "
              f"{os.getloadavg()[0]:.2f} after), loopback, 100-byte values, stores in {os.path.dirname(b.tmp)}")
        print(f"{'':48}{'ours':>14}{'mnesia':>14}{'ratio':>9}")
        print(f"1. durable writes/s, {args.clients} clients, {seconds:g} s, best of {runs}")
        print(f"{'   mnesia clients on its writer node':48}{w_ours:14,.0f}{w_local:14,.0f}{w_ours / w_local:8.2f}x")
        print(f"{'   mnesia clients on the client node (erpc)':48}{w_ours:14,.0f}{w_remote:14,.0f}{w_ours / w_remote:8.2f}x")
        best = max(w_local, w_remote)
        print(f"{'   headline (vs mnesia best), goal >= 2x':48}{'':28}{w_ours / best:8.2f}x")
        print(f"2. replica lag, {lag_n} writes x 2 replicas, us")
        lo50, lo99 = pct(lag_ours, .5), pct(lag_ours, .99)
        for label, xs in (("stamped on the client node", lag_m_here), ("stamped on its own nodes", lag_m_local)):
            m50, m99 = pct(xs, .5), pct(xs, .99)
            print(f"   p50, mnesia {label:27}{lo50:14,}{m50:14,}{lo50 / max(m50, 1):8.2f}x")
            print(f"   p99, mnesia {label:27}{lo99:14,}{m99:14,}{lo99 / max(m99, 1):8.2f}x")
        b50 = min(pct(lag_m_here, .5), pct(lag_m_local, .5))
        b99 = min(pct(lag_m_here, .99), pct(lag_m_local, .99))
        print(f"{'   headline p50 / p99 (vs mnesia best), goal <= 1x':48}{'':14}{'':14}"
              f"{lo50 / max(b50, 1):6.2f}x / {lo99 / max(b99, 1):.2f}x")
        print(f"   (ours: min {min(lag_ours)} max {max(lag_ours)}, {sum(x < 0 for x in lag_ours)} negative, "
              f"{lag_skipped} samples skipped; mnesia client node: min {min(lag_m_here)} max {max(lag_m_here)}, "
              f"{sum(x < 0 for x in lag_m_here)} negative)")
        print(f"   (the writes themselves, call to ack at the client node, p50/p99/max: ours put "
              f"{pct(ack_ours, .5):,}/{pct(ack_ours, .99):,}/{max(ack_ours):,}, mnesia dirty_write via the proxy "
              f"{pct(ack_m, .5):,}/{pct(ack_m, .99):,}/{max(ack_m):,})")
        snap_mb_all = value_bytes / MIB
        srate = value_bytes / snap_s / MIB
        print(f"3. snapshot of {snap_mb_all:,.0f} MB of values to a fresh replica (store files on disk: dc1 {store_mb:,.0f} MB, ds3 {store3_mb:,.0f} MB)")
        print(f"   from spawning ds3 to following at head      {snap_s:10.2f} s  {srate:10,.0f} MB/s")
        if snap_transfer_s:
            print(f"   from first seen in phase snapshot            {snap_transfer_s:10.2f} s  "
                  f"{value_bytes / snap_transfer_s / MIB:10,.0f} MB/s")
        print(f"   (CPU meanwhile: dc1 {snap_cpu[0]:.1f} s, ds3 {snap_cpu[1]:.1f} s)")
        print(f"   raw loopback TCP, {snap_mb} MB (python)          {'':13}{tcp / MIB:10,.0f} MB/s")
        print(f"   ratio snapshot/raw TCP, goal >= 0.5x          {'':13}{srate * MIB / tcp:10.2f}x")
        print(f"   reference: disk, {snap_mb} MB + one fsync         {'':13}{disk / MIB:10,.0f} MB/s")
        print(f"   filling dc1 with {snap_mb} x 1 MiB puts (8 at a time) took {fill_s:.2f} s "
              f"({snap_mb / fill_s:,.0f} MB/s); ds3 snapshots {snap['snapshots']}, resumes {snap['resumes']}")
        print(f"4. restart: ds1 stopped (SIGTERM), {restart_n:,} puts ({args.clients} at a time, "
              f"{restart_fill_s:.2f} s, {restart_n / restart_fill_s:,.0f}/s), ds1 started again")
        how = ("resumed" if restart["resumes"] >= 1 and restart["snapshots"] == 0 else "took a snapshot")
        print(f"   caught up (following, lag 0, version {restart['version']} = head) in {restart_s:.2f} s "
              f"after spawning: {how} (status resumes {restart['resumes']}, snapshots {restart['snapshots']}, "
              f"'resuming from version' in its log: {'yes' if resumed_log else 'no'})")
        print(f"checks: client errors {errors}; every replica at the writer's version "
              f"{st['dc1']['version']} with {st['dc1']['entries']:,} entries: {'yes' if consistent else 'NO'}")
        if not consistent:
            print(f"   statuses: {st}")
        if any(p != "following" for p in empty_phase.values()):
            print(f"note: replicas of the empty writer (version 0), about 1 s after it started, were in "
                  f"phase {', '.join(f'{n} {p}' for n, p in empty_phase.items())} (following after the first write)")
        failed = False
    finally:
        b.close(failed)
    # Every child has been waited for now, so its CPU time is in os.times().
    own, busy, wall = own_cpu_s() - own0, busy_cpu_s() - busy0, time.monotonic() - wall0
    print(f"cpu: this run's processes {own:.0f} s, outside them (other programs, kernel threads) {max(0, busy - own):.0f} s, "
          f"over {wall:.0f} s of wall time (much of the latter means a disturbed run)")


if __name__ == "__main__":
    main()
