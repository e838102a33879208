//! The sans-IO half of the distribution protocol: capability flags, the handshake state
//! machines, control messages, data frames, the reassembly of fragmented messages, and terms.
//! Nothing here touches a socket or awaits, so every piece is tested (and fuzzed) on plain
//! bytes.

pub mod control;
pub mod flags;
pub mod frame;
pub mod handshake;
pub mod reassembly;
pub mod term;

pub use control::{Control, ProcRef};
pub use frame::{decode_frame, FrameError, Framing, Inbound, Message};
pub use term::{Atom, Pid, Ref, Term};
