//! The integration tests, as one binary (one link, one shared `util`). `interop_*` run
//! against real OTP (`erl`, `epmd`, `elixir`); the rest against our own binary and library.

mod beacon_e2e;
mod cli;
mod data;
mod dist_node;
mod epmd_daemon;
mod hostile;
mod interop_beacon;
mod interop_dist;
mod interop_epmd;
mod interop_global;
mod interop_large;
mod interop_pg;
mod interop_process;
mod operator;
mod registry;
mod registry_partition;
mod robustness;
mod top;
mod util;
