#!/usr/bin/env python3
"""The process registry (cluster_server) against OTP's global and pg, side by side in one run
on one machine: registrations/s, local lookups/s, group joins/s, how soon a registration is
seen on another node, and failover after a node is killed.

    cargo build --release && python3 benches/registry_vs_global.py [--quick]

Each side has 3 nodes. Ours: three `cluster start` nodes, the beacon beacon1 and two `game`
nodes n1, n2, from a roles file written to the temp dir (`[types.echo] restart =
"elsewhere"`; `game` has no requirements; both roles host echo, the default). BEAM: three
plain `erl` nodes bm1, bm2, bm3 (`-kernel start_pg true`), meshed, global synced, each pg
scope seeing the others. One port mapper (`cluster epmd`) on a fresh loopback port serves
both sides; every node has its own HOME in the temp dir. A hidden client erl node (the
"driver", benches/registry_bench.erl, compiled at run time) issues requests to both sides:
hidden, so that it takes part in neither side's global or pg. What only a library node can
do (local reads, the library's own calls) is timed by benches/registry_load.rs (a `cargo
bench` binary, built by this script), whose library node(s) join our cluster as extra
visible nodes (`cluster::registry::start`, hosting echo; the node's default pg scope): so
ours then has 4 (or 5) nodes where BEAM has 3, which costs ours (more peers to tell). Every
node of ours runs as `cluster start` runs by default (one thread, polling 50 us while busy),
the bench binary's too. Global allows one name per process, so on both sides every
registration is of a new process.

1. Unique registrations/s, cluster-wide. Workers register new processes under unique names
   ({Run, Worker, I}) one after the other, for --seconds (5) or until --max-names (200,000)
   in all, and keep them (the processes live) until the run is over. Sequential: one worker,
   on (or calling) the first node. Concurrent: --workers (16) per node, on (or calling) all
   three; the library node runs 3 x --workers tasks. Two placements a side:
   - from the driver (a client hop): ours `gen_server:call({cluster_server, N},
     {set_process, reg, Id, Pid})`; BEAM `erpc:call(N, global, register_name, [Name, Pid])`;
     Pid a process spawned on the driver for each name.
   - on the nodes (no client hop): ours `Registry::register` on the bench binary's library
     node (a call to its own cluster_server); BEAM workers spawned on the BEAM nodes calling
     `global:register_name/2` there with a process spawned there.
   Counted: acks over the run (start and end stamped on the driver or in the bench binary).
   Ours answers once the owner has it and tells the others after; global answers once every
   node has it. So ours is also timed until every one of its servers' tables holds every
   name (`status` -> `entries`, polled right after the run: an upper bound), and the
   headline takes ours "visible everywhere", best placement, against BEAM's best placement.
   Between runs the workers exit and every table is back to its size before the run. Best
   of --runs (2).
2. Local lookups/s, one thread, after each side's table holds --lookup-names (2000) names and
   nothing else of ours. BEAM: names {look, I} registered by a process on bm1, then a loop on
   bm1 (one process, through erpc) of `global:whereis_name({look, I})`, cycling through the
   names. Ours: the bench binary's library node registers `{look, I}` itself
   (`Registry::register`), then loops `Registry::whereis("look", &I)` on a thread of its own
   (the node keeps serving on its runtime's thread). --lookups (5,000,000) per run, best of
   --lookup-runs (3); a miss would be counted.
3. Group joins/s, new groups, then the time until every other node's scope has the last.
   Library: one process joins {g, I} one after the other (--joins, 200,000, within 30 s):
   BEAM `pg:join({g, I}, self())` in a process on bm1 (through erpc), seen = bm2 and bm3's
   `pg:get_members/1`; ours `Registry::join({g, I}, [pid])` (OTP's default scope, spoken by
   src/dist/builtin/pg) on the bench binary's library node, whose scope tells 3 peers where
   bm1's tells 2; seen = each peer scope answering `{monitor, Group}` with our pid. This is
   the headline (what users call). Also the same calls on both sides, 2 peers each:
   --workers (16) processes on the driver call `gen_server:call({pg, N}, {join_local, {gd,
   W, I}, Pid})` (what pg:join does) on n1 / bm1 for a process Pid of that node (ours an
   echo process), --joins in all; seen the same way on the other two nodes.
4. Visibility: --vis-samples (300) registrations, --gap-ms (2) apart. A spinner on node B
   waits for the name (armed before the registration starts), node A registers it; the time
   from just before the register call on A to the spinner first seeing it on B. BEAM: A =
   bm1 (`global:register_name` in a process there), B = bm2 (a process looping
   `global:whereis_name`, `erlang:yield()` between polls), stamps
   `os:system_time(microsecond)` on each (one host clock). Ours: A and B are two library
   nodes in the bench binary, each on its own thread and runtime; A calls
   `Registry::register`, a third thread loops on B's `Registry::whereis`
   (`std::thread::yield_now()` between polls: on 2 cores a poller that never yields keeps
   B's own thread off the CPU for a time slice, milliseconds at p99); stamps `Instant` (one
   process). The register call's own time (to its ack) is shown beside.
5. Failover of --failover (1000) processes after `kill -9` of their node. Ours: echo
   processes created on n2 (`{create_process, echo, I, {node, n2}}` through n1 from the
   driver, 16 at a time); the time from the kill (this script's clock) until every
   survivor's table (beacon1, n1: `{procs, echo, all}`, polled every 5 ms from the driver)
   holds all of them with none on n2; and the survivors' own reported times (`status` ->
   `failovers`: from their nodedown until their part was re-created). BEAM has no
   equivalent. For reference it is emulated, clearly labelled: the processes on bm3
   registered with global, a watcher on bm1 (`erlang:monitor_node`) that on nodedown spawns
   new ones, alternating bm1/bm2, and `global:register_name`s each (retrying while global
   still holds the dead one's name); timed from the kill until its last registration
   returned.

Goals (the issue's): registrations >= 20x global, lookups and joins >= 1x; visibility and
failover are reported without one. --quick: a smoke run (2 s registration runs, one each,
500 lookup names, 1M lookups once, 30k joins, 50 visibility samples, 200 processes to fail
over). --skip-beam-failover leaves out the emulation. CLUSTER_BIN picks another build.
Every process the script starts is stopped by its pid, on failure too, and its temp dir
removed (--keep keeps it).
"""
import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_vs_beam import CLUSTER, free_port  # noqa: E402
from data_vs_mnesia import busy_cpu_s, own_cpu_s, parse_value, pct  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
COOKIE = "bench"
HOST = "127.0.0.1"
OURS = ["beacon1", "n1", "n2"]
BEAM = ["bm1", "bm2", "bm3"]
ROLES = """[cluster]
beacon = "beacon1@127.0.0.1"
net_ticktime = 60
mesh = "full"

[types.echo]
restart = "elsewhere"

[roles.beacon]

[roles.game]
description = "hosts echo; no requirements"
"""


def node(n):
    return f"{n}@{HOST}"


def atom(n):
    return f"'{node(n)}'"


def atoms(ns):
    return "[" + ", ".join(atom(n) for n in ns) + "]"


def load_binary():
    """Builds benches/registry_load.rs (the bench profile, as `cargo bench` does) and returns
    its path."""
    out = subprocess.run(
        ["cargo", "bench", "--bench", "registry_load", "--no-run", "--message-format=json"],
        cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        sys.exit(f"could not build benches/registry_load.rs:\n{out.stderr[-3000:]}")
    for line in out.stdout.splitlines():
        m = json.loads(line)
        if m.get("executable") and m.get("target", {}).get("name") == "registry_load":
            return m["executable"]
    sys.exit("could not find the registry_load binary")


def parse_result(line):
    out = {}
    for item in line.split()[1:]:
        k, v = item.split("=", 1)
        out[k] = parse_value(v)
    return out


def as_list(v):
    return v if isinstance(v, list) else [v]


class Bench:
    """The processes of one run, their logs and the temp dir; all stopped by pid on close."""

    def __init__(self, keep):
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="registry_vs_global.")
        self.logs = os.path.join(self.tmp, "logs")
        os.makedirs(self.logs)
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("CLUSTER_") and k not in ("ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS")}
        self.env.update(ERL_EPMD_PORT=str(self.port))
        self.procs = {}  # name -> Popen
        self.files = []
        self.driver = None
        self.roles = os.path.join(self.tmp, "roles.toml")
        with open(self.roles, "w") as f:
            f.write(ROLES)

    def spawn(self, name, cmd, stdin=None):
        home = os.path.join(self.tmp, "home", name)
        os.makedirs(home, exist_ok=True)
        out = open(os.path.join(self.logs, f"{name}.out"), "a")
        err = open(os.path.join(self.logs, f"{name}.err"), "a")
        self.files += [out, err]
        p = subprocess.Popen(cmd, env=dict(self.env, HOME=home), cwd=self.tmp,
                             stdin=stdin or subprocess.DEVNULL,
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

    def wait_exit(self, name, timeout):
        """Waits for a process that ends on its own; a RESULT line from its stdout."""
        p = self.procs[name]
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} did not finish within {timeout} s")
        lines = [line for line in self.log(name).splitlines() if line.startswith("RESULT")]
        if p.returncode != 0 or not lines:
            raise RuntimeError(f"{name} failed ({p.returncode}): {self.log(name, 'err')[-2000:]}")
        return parse_result(lines[-1])

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

    def kill(self, name):
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(10)

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

    def cluster(self, name, role):
        cmd = [CLUSTER, "--epmd-port", str(self.port), "--roles", self.roles,
               "start", "--role", role, "--name", node(name), "--cookie", COOKIE,
               "--no-epmd-start"]
        return self.spawn(name, cmd)

    def load(self, tag, binary, mode, *extra):
        cmd = [binary, mode, "--epmd-port", str(self.port),
               "--connect", ",".join(node(n) for n in OURS), *extra]
        return self.spawn(tag, cmd)


class Driver:
    """The client erl node: one Erlang term a line in, one RESULT/ERROR line out."""

    def __init__(self, bench):
        self.p = bench.erl("driver", ["-hidden"], stdin=subprocess.PIPE,
                           eval_text="registry_bench:driver()")
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
        return parse_result(line)

    def call(self, term, timeout=120):
        self.send(term)
        return self.result(timeout)

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--seconds", type=float, default=None, help="per registration run [5; quick 2]")
    ap.add_argument("--workers", type=int, default=16, help="concurrent registrations: workers per node")
    ap.add_argument("--runs", type=int, default=None, help="registration runs per case, best taken [2; quick 1]")
    ap.add_argument("--max-names", type=int, default=None,
                    help="a registration run also ends after this many names [200000; quick 50000]")
    ap.add_argument("--lookup-names", type=int, default=None, help="[2000; quick 500]")
    ap.add_argument("--lookups", type=int, default=None, help="per lookup run [5000000; quick 1000000]")
    ap.add_argument("--lookup-runs", type=int, default=None, help="[3; quick 1]")
    ap.add_argument("--joins", type=int, default=None, help="[200000; quick 30000]")
    ap.add_argument("--vis-samples", type=int, default=None, help="[300; quick 50]")
    ap.add_argument("--gap-ms", type=int, default=2)
    ap.add_argument("--failover", type=int, default=None, help="processes [1000; quick 200]")
    ap.add_argument("--skip-beam-failover", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = ap.parse_args()
    q = args.quick
    seconds = args.seconds or (2 if q else 5)
    max_names = args.max_names or (50_000 if q else 200_000)
    runs = args.runs or (1 if q else 2)
    look_n = args.lookup_names or (500 if q else 2000)
    lookups = args.lookups or (1_000_000 if q else 5_000_000)
    look_runs = args.lookup_runs or (1 if q else 3)
    joins = args.joins or (30_000 if q else 200_000)
    vis_n = args.vis_samples or (50 if q else 300)
    fo_n = args.failover or (200 if q else 1000)
    if not os.path.exists(CLUSTER):
        sys.exit(f"build first: cargo build --release ({CLUSTER} missing)")
    load = load_binary()

    def on_term(*_):
        raise SystemExit("terminated")

    signal.signal(signal.SIGTERM, on_term)
    load_before = os.getloadavg()[0]
    busy0, own0, wall0 = busy_cpu_s(), own_cpu_s(), time.monotonic()
    b = Bench(args.keep)
    failed = True
    try:
        ebin = os.path.join(b.tmp, "ebin")
        os.makedirs(ebin)
        subprocess.run(["erlc", "-o", ebin, os.path.join(HERE, "registry_bench.erl")], check=True,
                       timeout=120)
        b.spawn("epmd", [CLUSTER, "epmd", "--port", str(b.port), "--address", HOST])
        b.wait_line("epmd", "listening", 10)

        # Ours.
        b.cluster("beacon1", "beacon")
        b.wait_line("beacon1", "beacon ready", 30)
        for n in OURS[1:]:
            b.cluster(n, "game")
        for n in OURS[1:]:
            b.wait_line(n, f"{node(n)} ready", 30)
        # BEAM.
        for n in BEAM:
            b.erl(n, ["-kernel", "start_pg", "true"])
        for n in BEAM:
            b.wait_line(n, "ready", 30)
        d = b.driver = Driver(b)
        ours_all = OURS  # the beacon and the two game nodes
        d.call(f"{{connect, {atoms(ours_all + BEAM)}}}", 30)
        vs = d.call("versions", 30)
        d.call(f"{{mesh_beam, {atoms(BEAM)}, 30000}}", 60)
        d.call(f"{{servers, {atoms(ours_all)}, {len(ours_all)}, 30000}}", 60)

        # 1. Registrations.
        base = d.call(f"{{counts, {atoms(ours_all)}, {atoms(BEAM)}}}", 30)
        base_ours = {n: base[f"n_{node(n)}"] for n in ours_all}
        base_beam = {n: base[f"n_{node(n)}"] for n in BEAM}
        if len(set(base_ours.values())) != 1 or len(set(base_beam.values())) != 1:
            raise RuntimeError(f"tables differ before the runs: {base}")
        b_ours, b_beam = base_ours["n1"], base_beam["bm1"]
        ms = int(seconds * 1000)
        reg = {}  # (case, side) -> [results]
        cases = [("seq", ["n1"], ["bm1"], 1), ("conc", OURS, BEAM, args.workers)]
        run_id = 0
        for run in range(runs):
            for case, o_targets, m_targets, workers in cases:
                for side, targets, all_nodes, base_n in (("ours", o_targets, ours_all, b_ours),
                                                         ("beam_erpc", m_targets, BEAM, b_beam),
                                                         ("beam_local", m_targets, BEAM, b_beam)):
                    run_id += 1
                    r = d.call(f"{{reg, {side}, {run_id}, {atoms(targets)}, {workers}, {ms}, {max_names}, "
                               f"{atoms(all_nodes)}}}", seconds + 300)
                    reg.setdefault((case, side), []).append(r)
                    d.call(f"{{reg_stop, {'ours' if side == 'ours' else 'beam'}, {atoms(all_nodes)}, "
                           f"{base_n}, 300000}}", 330)

        # Ours again, from a library node: Registry::register, a call to its own server.
        lib_reg = {}
        for run in range(runs):
            for case, workers in (("seq", 1), ("conc", 3 * args.workers)):
                tag = f"libreg{case}{run}"
                b.load(tag, load, "register", "--name", node(tag), "--workers", str(workers),
                       "--seconds", str(seconds), "--count", str(max_names), "--max-seconds", "120")
                lib_reg.setdefault(case, []).append(b.wait_exit(tag, seconds + 200))
                d.call(f"{{wait_count, ours, {atoms(ours_all)}, {b_ours}, 300000}}", 330)

        # 2. Lookups.
        fill_beam = d.call(f"{{fill_beam, {atom('bm1')}, {look_n}}}", 3600)
        d.call(f"{{wait_count, beam, {atoms(BEAM)}, {b_beam + look_n}, 60000}}", 90)
        look_beam = [d.call(f"{{lookup_beam, {atom('bm1')}, {look_n}, {lookups}}}", 900)
                     for _ in range(look_runs)]
        b.load("look", load, "lookup", "--name", node("look"), "--entries", str(look_n),
               "--count", str(lookups), "--runs", str(look_runs), "--max-seconds", "600")
        look_ours = b.wait_exit("look", 600 * look_runs + 120)
        d.call("stop_holders", 30)

        # 3. Joins.
        jd_beam = d.call(f"{{joins_call, beam, {atom('bm1')}, {atoms(['bm2', 'bm3'])}, {args.workers}, {joins}, 30000}}", 200)
        jd_ours = d.call(f"{{joins_call, ours, {atom('n1')}, {atoms(['beacon1', 'n2'])}, {args.workers}, {joins}, 30000}}", 200)
        join_beam = d.call(f"{{joins_beam, {atom('bm1')}, {atoms(['bm2', 'bm3'])}, {joins}, 30000}}", 200)
        b.load("join", load, "joins", "--name", node("join"), "--count", str(joins),
               "--max-seconds", "30")
        join_ours = b.wait_exit("join", 200)

        # 4. Visibility.
        vis_beam = d.call(f"{{vis_beam, {atom('bm1')}, {atom('bm2')}, {vis_n}, {args.gap_ms}}}",
                          vis_n * 25 + 60)
        b.load("vis", load, "visibility", "--name", node("visa"), "--name2", node("visb"),
               "--count", str(vis_n), "--gap-ms", str(args.gap_ms), "--max-seconds", "600")
        vis_ours = b.wait_exit("vis", 700)

        # 5. Failover, ours.
        survivors = ["beacon1", "n1"]
        d.call(f"{{wait_count, ours, {atoms(ours_all)}, {b_ours}, 60000}}", 90)
        fo_fill = d.call(f"{{create_echo, {atom('n1')}, {atom('n2')}, {fo_n}, 16}}", 900)
        d.call(f"{{wait_placed, {atoms(ours_all)}, {fo_n}, {atom('n2')}, 60000}}", 90)
        d.send(f"{{wait_failover, {atoms(survivors)}, {fo_n}, {atom('n2')}, 120000}}")
        time.sleep(0.2)  # let the driver's first polls pass (the tables are complete, on n2)
        t0 = time.time()
        b.kill("n2")
        fo = d.result(180)
        fo_s = fo["end_us"] / 1e6 - t0
        fo_rep = d.call(f"{{failover_reports, {atoms(survivors)}}}", 30)

        # 6. Failover, BEAM, emulated.
        fo_beam = None
        if not args.skip_beam_failover:
            fb_setup = d.call(f"{{fo_beam_setup, {atom('bm3')}, {fo_n}}}", 3600)
            d.call(f"{{fo_beam_arm, {atom('bm1')}, {atom('bm3')}, {atoms(['bm1', 'bm2'])}, {fo_n}}}", 30)
            d.send("{fo_beam_wait, 600000}")
            time.sleep(0.2)
            t0b = time.time()
            b.kill("bm3")
            r = d.result(660)
            chk = d.call(f"{{fo_beam_check, {atom('bm2')}, {fo_n}}}", 120)
            fo_beam = (r["end_us"] / 1e6 - t0b, (r["end_us"] - r["down_us"]) / 1e6, r["retries"],
                       chk, fb_setup["us"] / 1e6)

        # ---- the table ----
        def rate(r, key="us"):
            return r["ops"] / (r[key] / 1e6)

        print(f"registry vs global/pg (OTP {vs['otp']}, kernel {vs['kernel']}): 3 nodes a side "
              f"(ours: the beacon + 2 game nodes), one machine ({os.cpu_count()} cores, load average "
              f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after), loopback")
        print(f"{'':56}{'ours':>13}{'BEAM':>13}{'ratio':>9}")
        summary = []
        print(f"1. unique registrations/s, cluster-wide, {seconds:g} s runs, best of {runs}")
        for case, label in (("seq", "1 worker"), ("conc", f"{args.workers} workers x 3 nodes")):
            o = reg[(case, "ours")]
            o_ack = max(rate(r) for r in o)
            o_vis = max(rate(r, "visible_us") for r in o)
            lib = lib_reg[case]
            l_ack = max(rate(r) for r in lib)
            l_vis = max(rate(r, "visible_us") for r in lib)
            m_erpc = max(rate(r) for r in reg[(case, "beam_erpc")])
            m_local = max(rate(r) for r in reg[(case, "beam_local")])
            m_best = max(m_erpc, m_local)
            o_best = max(o_vis, l_vis)
            print(f"   {label}" + ("" if case == "seq" else f" (the library node: {3 * args.workers} tasks)"))
            print(f"{'     from the driver: set_process vs global via erpc':56}{o_ack:13,.0f}{m_erpc:13,.0f}{o_ack / m_erpc:8.1f}x")
            print(f"{'       ours until visible on all 3 servers':56}{o_vis:13,.0f}{m_erpc:13,.0f}{o_vis / m_erpc:8.1f}x")
            print(f"{'     on the nodes: Registry::register vs global':56}{l_ack:13,.0f}{m_local:13,.0f}{l_ack / m_local:8.1f}x")
            print(f"{'       ours until visible on all 4 servers':56}{l_vis:13,.0f}{m_local:13,.0f}{l_vis / m_local:8.1f}x")
            print(f"{'     headline: ours visible everywhere vs BEAM, best each':56}{o_best:13,.0f}{m_best:13,.0f}{o_best / m_best:8.1f}x")
            errs = sum(r["errors"] for k, rs in reg.items() if k[0] == case for r in rs) + \
                sum(r["errors"] for r in lib)
            print(f"     (errors {errs}; names registered: ours {sum(r['ops'] for r in o) + sum(r['ops'] for r in lib):,}, "
                  f"BEAM {sum(r['ops'] for k, rs in reg.items() if k[0] == case and k[1] != 'ours' for r in rs):,})")
            summary.append((f"registrations/s, {label}", o_best, m_best, o_best / m_best, 20))
        lb_best = max(r["done"] / (r["us"] / 1e6) for r in look_beam)
        lo_runs = [d_ / (u / 1e6) for u, d_ in zip(as_list(look_ours["us"]), as_list(look_ours["done"]))]
        lo_best = max(lo_runs)
        print(f"2. local lookups/s, one thread, {look_n:,} names in the table, best of {look_runs}")
        print(f"{'   Registry::whereis vs global:whereis_name':56}{lo_best:13,.0f}{lb_best:13,.0f}{lo_best / lb_best:8.2f}x")
        print(f"   (misses: ours {look_ours['misses']}, BEAM {sum(r['misses'] for r in look_beam)}; "
              f"our library node's table {look_ours['table']} entries; filling took ours "
              f"{look_ours['fill_us'] / 1e6:.2f} s, global {fill_beam['us'] / 1e6:.2f} s)")
        summary.append(("local lookups/s", lo_best, lb_best, lo_best / lb_best, 1))
        jo_ack = join_ours["joins"] / (join_ours["us"] / 1e6)
        jb_ack = join_beam["joins"] / (join_beam["us"] / 1e6)
        jo_seen = join_ours["joins"] / (join_ours["seen_us"] / 1e6)
        jb_seen = join_beam["joins"] / (join_beam["seen_us"] / 1e6)
        print(f"3. group joins/s, one process, new groups ({join_ours['joins']:,} ours, {join_beam['joins']:,} BEAM)")
        print(f"{'   acked: Registry::join vs pg:join':56}{jo_ack:13,.0f}{jb_ack:13,.0f}{jo_ack / jb_ack:8.2f}x")
        print(f"{'   until the last is seen on every other node':56}{jo_seen:13,.0f}{jb_seen:13,.0f}{jo_seen / jb_seen:8.2f}x")
        print(f"   (errors: ours {join_ours['errors']}, BEAM {join_beam['errors']}; peers told: ours "
              f"{join_ours['peers']}, BEAM {join_beam['peers']})")
        jdo_ack = jd_ours["joins"] / (jd_ours["us"] / 1e6)
        jdb_ack = jd_beam["joins"] / (jd_beam["us"] / 1e6)
        jdo_seen = jd_ours["joins"] / (jd_ours["seen_us"] / 1e6)
        jdb_seen = jd_beam["joins"] / (jd_beam["seen_us"] / 1e6)
        print(f"   the same join_local calls from {args.workers} processes on the driver to n1 / bm1 (2 peers each)")
        print(f"{'     acked':56}{jdo_ack:13,.0f}{jdb_ack:13,.0f}{jdo_ack / jdb_ack:8.2f}x")
        print(f"{'     until the last is seen on every other node':56}{jdo_seen:13,.0f}{jdb_seen:13,.0f}{jdo_seen / jdb_seen:8.2f}x")
        summary.append(("group joins/s (library, local)", jo_ack, jb_ack, jo_ack / jb_ack, 1))
        summary.append((f"group joins/s ({args.workers} driver callers)", jdo_ack, jdb_ack, jdo_ack / jdb_ack, 1))
        vo, vb = as_list(vis_ours["vis"]), as_list(vis_beam["vis"])
        ao, ab = as_list(vis_ours["ack"]), as_list(vis_beam["ack"])
        print(f"4. registration visible on another node, {len(vo)} / {len(vb)} samples, us")
        for p, name in ((.5, "p50"), (.99, "p99")):
            o_, m_ = pct(vo, p), pct(vb, p)
            print(f"{'   ' + name:56}{o_:13,}{m_:13,}{o_ / max(m_, 1):8.2f}x")
            summary.append((f"visible on another node, {name} (us)", o_, m_, o_ / max(m_, 1), None))
        print(f"   (min/max: ours {min(vo)}/{max(vo)}, BEAM {min(vb)}/{max(vb)}; lost: ours "
              f"{vis_ours['lost']}, BEAM {vis_beam['lost']}; the register call to its ack p50/p99: "
              f"ours {pct(ao, .5)}/{pct(ao, .99)}, BEAM {pct(ab, .5)}/{pct(ab, .99)})")
        print(f"5. failover of {fo_n} processes after kill -9 of their node")
        placed = ", ".join(f"{k[3:]} {v}" for k, v in sorted(fo.items()) if k.startswith("on_"))
        print(f"   ours: every survivor's table complete {fo_s * 1000:,.0f} ms after the kill (now on: {placed})")
        reps = []
        for n in survivors:
            msl, pl = as_list(fo_rep.get(f"ms_{node(n)}", [])), as_list(fo_rep.get(f"procs_{node(n)}", []))
            fl = as_list(fo_rep.get(f"failed_{node(n)}", []))
            reps += [f"{n} re-created {p} ({f} failed) in {m} ms" for m, p, f in zip(msl, pl, fl)]
        print(f"   ours, as the servers report it: {'; '.join(reps) or 'nothing reported'}")
        print(f"   (creating them on n2 took {fo_fill['us'] / 1e6:.2f} s, 16 at a time)")
        if fo_beam:
            tot, after_down, retries, chk, setup_s = fo_beam
            print(f"   BEAM has no failover; emulated (monitor_node + spawn + global:register_name, one "
                  f"by one): {tot * 1000:,.0f} ms after the kill ({after_down * 1000:,.0f} ms after its "
                  f"nodedown; {retries} retries; {chk['named']} names back, {chk['alive']} alive; "
                  f"registering them on bm3 took {setup_s:.2f} s)")
            summary.append((f"failover of {fo_n}, ms (BEAM emulated)", fo_s * 1000, tot * 1000,
                            fo_s / tot, None))
        else:
            summary.append((f"failover of {fo_n}, ms (BEAM: none)", fo_s * 1000, None, None, None))

        print()
        print(f"{'summary':48}{'ours':>13}{'BEAM':>13}{'ratio':>9}{'goal':>8}  met")
        for label, o_, m_, ratio, goal in summary:
            ms_ = f"{m_:13,.0f}" if m_ is not None else f"{'-':>13}"
            rs = f"{ratio:8.2f}x" if ratio is not None else f"{'-':>9}"
            gs = f"{goal:>6}x" if goal else f"{'-':>7}"
            met = ("yes" if ratio >= goal else "NO") if goal else "(no goal)"
            print(f"{label:48}{o_:13,.0f}{ms_}{rs}{gs}   {met}")
        failed = False
    finally:
        b.close(failed)
    own, busy, wall = own_cpu_s() - own0, busy_cpu_s() - busy0, time.monotonic() - wall0
    print(f"cpu: this run's processes {own:.0f} s, outside them (other programs, kernel threads) "
          f"{max(0, busy - own):.0f} s, over {wall:.0f} s of wall time (much of the latter means a "
          f"disturbed run)")


if __name__ == "__main__":
    main()
