#!/usr/bin/env python3
"""A large binary from erl, to our node and to an erl node, side by side in one run: time and
the receiver's peak extra memory.

    cargo build --release && python3 benches/large_vs_beam.py [--mb 100] [--runs 3]

One port mapper (`cluster epmd`). Receivers: benches/dist_load.rs `receiver` (our node, as
`cluster start` runs it: one thread, fragments, the default receive budget) and a plain erl
node; each has a process `size` that answers `{From, Bin}` with `{size, byte_size(Bin)}`. An erl
sender makes one --mb binary and, for each run, sends it to each receiver in turn, timing from
the send to the answer (erl fragments it; both receivers put it back together). Before each
send the receiver's peak RSS is reset (`/proc/PID/clear_refs` 5, needs root or the same user);
the peak extra memory is VmHWM after minus VmRSS before. The best run of each side is
reported, and the ratios ours/erl.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_vs_beam import Env, erl_cmd, load_binary, run_ok, wait_ready  # noqa: E402

ERL_RECEIVER = r"""
Size = fun S() -> receive {From, B} -> From ! {size, byte_size(B)}, S() end end,
register(size, spawn(Size)),
io:format("ready~n"),
receive stop -> ok end.
"""

SENDER = r"""
Mb = %(mb)d, Runs = %(runs)d,
Targets = ['rrecv@127.0.0.1', 'erecv@127.0.0.1'],
[pong = net_adm:ping(T) || T <- Targets],
Bin = binary:copy(rand:bytes(1000000), Mb),
Send = fun(T) ->
    S = erlang:monotonic_time(microsecond),
    {size, T} ! {self(), Bin},
    receive {size, N} when N =:= byte_size(Bin) -> ok end,
    io:format("~s ~b~n", [T, erlang:monotonic_time(microsecond) - S])
end,
[Send(T) || _ <- lists:seq(1, Runs), T <- Targets],
halt().
"""


def status_kib(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def beam_of(pid):
    """The process that holds the node: `erl` may be a script that runs beam as a child."""
    for k in os.popen(f"pgrep -P {pid}").read().split():
        if "beam" in open(f"/proc/{k}/comm").read():
            return int(k)
    return pid


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    load = load_binary()
    env = Env()
    try:
        rr = env.spawn([load, "receiver", "--name", "rrecv@127.0.0.1", "--epmd-port", str(env.port)])
        wait_ready(rr, "rust receiver")
        cmd, e = erl_cmd("erecv@127.0.0.1", env.port, ERL_RECEIVER)
        er = env.spawn(cmd, e)
        wait_ready(er, "erl receiver")
        pids = {"rrecv@127.0.0.1": rr.pid, "erecv@127.0.0.1": beam_of(er.pid)}
        base = {}
        for name, pid in pids.items():
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
            base[name] = status_kib(pid, "VmRSS")
        cmd, e = erl_cmd("esender@127.0.0.1", env.port, SENDER % {"mb": args.mb, "runs": args.runs})
        out = run_ok(cmd, e)
        times = {name: [] for name in pids}
        for line in out.splitlines():
            m = re.match(r"(\S+) (\d+)$", line.strip())
            if m and m.group(1) in times:
                times[m.group(1)].append(int(m.group(2)) / 1e6)
        peak = {name: (status_kib(pid, "VmHWM") - base[name]) / 1024 for name, pid in pids.items()}
        ours, theirs = min(times["rrecv@127.0.0.1"]), min(times["erecv@127.0.0.1"])
        po, pt = peak["rrecv@127.0.0.1"], peak["erecv@127.0.0.1"]
        print(f"{args.mb} MB erl->cluster {ours:6.3f} s   erl->erl {theirs:6.3f} s   ratio {ours / theirs:5.2f}x"
              f"  (runs: cluster {times['rrecv@127.0.0.1']}, erl {times['erecv@127.0.0.1']})")
        print(f"peak extra memory of the receiver: cluster {po:6.1f} MiB ({po / args.mb * 1.048576:4.2f}x the message)"
              f"   erl {pt:6.1f} MiB ({pt / args.mb * 1.048576:4.2f}x)")
    finally:
        env.close()


if __name__ == "__main__":
    main()
