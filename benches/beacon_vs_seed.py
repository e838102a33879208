#!/usr/bin/env python3
"""Sequential `get_requirements` calls per second: our beacon against seed 000's Elixir beacon
(benches/seed_beacon.exs), in one run, from the same Elixir client node.

    cargo build --release && python3 benches/beacon_vs_seed.py [--calls 20000] [--runs 3] [--registrations 10000]

Both beacons run as their own OS process behind one port mapper. Three real gate_manager nodes
(plain erl) run too, so that both beacons offer the same three providers (ours offers online
providers only). The client registers a gate (requiring gate_manager) and the three
gate_managers with each beacon, plus --registrations filler nodes of another resource (each
requiring one resource, as real nodes do), then
makes --calls sequential GenServer.call({BeaconServer.Beacon, Beacon}, {get_requirements,
Gate}) and reports calls/s. A beacon whose offer scans its registry slows down with the
fillers; ours indexes providers by resource. Sequential calls are bounded by the loopback
round trip, so the raw TCP round-trip floor of this machine is printed too (benches/dist_load.rs
raw-pingpong).
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_vs_beam import CLUSTER, COOKIE, Env, erl_cmd, load_binary, parse_rtt, run_ok, wait_ready  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

CLIENT = r"""
beacon = String.to_atom(Enum.at(System.argv(), 0))
n = String.to_integer(Enum.at(System.argv(), 1))
call = fn req -> GenServer.call({BeaconServer.Beacon, beacon}, req) end
gate = :"gate_bench@127.0.0.1"
# Register once per beacon: the seed's beacon appends duplicates on every re-register, which
# would make later runs slower for it alone.
fillers = String.to_integer(Enum.at(System.argv(), 2))
if call.({:get_requirements, gate}) == nil do
  :ok = call.({:register, {gate, Gate.Interface, :gate, [:gate_manager]}})
  for i <- 1..3 do
    :ok = call.({:register, {:"gm#{i}@127.0.0.1", GateManager.Interface, :gate_manager, []}})
  end
  for i <- 1..fillers//1 do
    # Like real nodes, each filler requires something (a gate needs a gate_manager).
    :ok = call.({:register, {:"filler#{i}@127.0.0.1", Filler.Interface, :filler, [:data_service]}})
  end
end
# Our beacon offers a provider once it is connected to it: wait (bounded) for all three.
wait = fn w, k ->
  case call.({:get_requirements, gate}) do
    {:ok, [_, _, _]} -> :ok
    _ when k > 0 -> Process.sleep(10); w.(w, k - 1)
    other -> raise "providers never online: #{inspect(other)}"
  end
end
wait.(wait, 1000)
for _ <- 1..1000, do: call.({:get_requirements, gate})
t = System.monotonic_time(:microsecond)
for _ <- 1..n, do: call.({:get_requirements, gate})
us = System.monotonic_time(:microsecond) - t
IO.puts("calls #{n} in #{us} us = #{round(n / (us / 1.0e6))} calls/s")
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--registrations", type=int, default=0,
                    help="filler registrations of another resource in each beacon")
    args = ap.parse_args()
    load = load_binary()
    env = Env()
    try:
        ours = env.spawn([CLUSTER, "start", "--name", "beacon1@127.0.0.1", "--role", "beacon",
                          "--cookie", COOKIE, "--epmd-port", str(env.port), "--no-epmd-start",
                          "--roles", os.path.join(os.path.dirname(HERE), "roles.toml")])
        for line in ours.stdout:
            if "beacon ready" in line:
                break
        seed = env.spawn(["elixir", "--name", "seedbeacon@127.0.0.1", "--cookie", COOKIE,
                          "--erl", "-start_epmd false", os.path.join(HERE, "seed_beacon.exs")],
                         dict(os.environ, ERL_EPMD_PORT=str(env.port)))
        wait_ready(seed, "seed beacon")
        for i in range(1, 4):
            cmd, e = erl_cmd(f"gm{i}@127.0.0.1", env.port, 'io:format("ready~n"), receive stop -> ok end.')
            gm = env.spawn(cmd, e)
            wait_ready(gm, f"gm{i}")
        script = os.path.join(tempfile.gettempdir(), "beacon_bench_client.exs")
        with open(script, "w") as f:
            f.write(CLIENT)
        rates = {"ours": [], "seed": []}
        for i in range(args.runs):
            for label, beacon in (("ours", "beacon1@127.0.0.1"), ("seed", "seedbeacon@127.0.0.1")):
                out = run_ok(["elixir", "--name", f"client_{label}{i}@127.0.0.1", "--cookie", COOKIE,
                              "--erl", "-start_epmd false", script, beacon, str(args.calls),
                              str(args.registrations)],
                             dict(os.environ, ERL_EPMD_PORT=str(env.port)))
                rates[label].append(int(re.search(r"= (\d+) calls/s", out).group(1)))
        raw = env.spawn([load, "raw-echo"])
        port = raw.stdout.readline().split()[1]
        floor, _ = parse_rtt(run_ok([load, "raw-pingpong", "--target", port, "--count", "20000"]))
        o, s = max(rates["ours"]), max(rates["seed"])
        print(f"get_requirements with {args.registrations} filler registrations:"
              f"  ours {o:7d} calls/s   seed Elixir beacon {s:7d} calls/s   ratio {o / s:5.2f}x"
              f"  (best of {args.runs}: ours {rates['ours']}, seed {rates['seed']})")
        print(f"ceiling for sequential calls at the raw TCP round trip ({floor:.1f} us): {1e6 / floor:7.0f} calls/s")
    finally:
        env.close()


if __name__ == "__main__":
    main()
