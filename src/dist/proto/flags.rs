//! Distribution capability flags (`DFLAG_*` in OTP's `dist.hrl`), exchanged in the handshake.
//!
//! We advertise the set that was verified against OTP 25 on this machine (see `DESIGN.md`):
//! the OTP 25 mandatory flags plus monitors, aliases, spawn, the sender-carrying SEND and
//! fragments. We leave out the atom cache: with FRAGMENTS agreed, every frame carries a
//! distribution header, and ours has no atom-cache references (see [`super::frame`]).

/// Node is visible (appears in `nodes()`); absent for hidden nodes such as CLI tools.
pub const PUBLISHED: u64 = 0x1;
/// Atom cache in the distribution header (not advertised).
pub const ATOM_CACHE: u64 = 0x2;
/// References with more than one ID word.
pub const EXTENDED_REFERENCES: u64 = 0x4;
/// Process monitors.
pub const DIST_MONITOR: u64 = 0x8;
/// Fun tags.
pub const FUN_TAGS: u64 = 0x10;
/// Monitors by registered name.
pub const DIST_MONITOR_NAME: u64 = 0x20;
/// New fun tags.
pub const NEW_FUN_TAGS: u64 = 0x80;
/// Extended pids and ports.
pub const EXTENDED_PIDS_PORTS: u64 = 0x100;
/// Export pointer tag.
pub const EXPORT_PTR_TAG: u64 = 0x200;
/// Bit binaries.
pub const BIT_BINARIES: u64 = 0x400;
/// IEEE floats.
pub const NEW_FLOATS: u64 = 0x800;
/// Unicode I/O.
pub const UNICODE_IO: u64 = 0x1000;
/// Distribution header atom cache (not advertised).
pub const DIST_HDR_ATOM_CACHE: u64 = 0x2000;
/// Small atom tags.
pub const SMALL_ATOM_TAGS: u64 = 0x4000;
/// UTF-8 atoms.
pub const UTF8_ATOMS: u64 = 0x10000;
/// Maps.
pub const MAP_TAG: u64 = 0x20000;
/// 32-bit creations.
pub const BIG_CREATION: u64 = 0x40000;
/// SEND_SENDER control message.
pub const SEND_SENDER: u64 = 0x80000;
/// Large seq-trace labels.
pub const BIG_SEQTRACE_LABELS: u64 = 0x100000;
/// Exit reasons carried as payload.
pub const EXIT_PAYLOAD: u64 = 0x400000;
/// Fragmented messages, and the distribution header on every frame.
pub const FRAGMENTS: u64 = 0x800000;
/// The OTP 23 handshake (creation in send_name, challenge with creation).
pub const HANDSHAKE_23: u64 = 0x1000000;
/// Link protocol with unlink IDs.
pub const UNLINK_ID: u64 = 0x2000000;
/// The OTP 25 mandatory set, as one flag.
pub const MANDATORY_25_DIGEST: u64 = 0x4000000;
/// Remote spawn.
pub const SPAWN: u64 = 1 << 32;
/// Dynamic node names.
pub const NAME_ME: u64 = 1 << 33;
/// Larger pid/port/reference fields.
pub const V4_NC: u64 = 1 << 34;
/// Process aliases.
pub const ALIAS: u64 = 1 << 35;

/// What OTP 25 requires of every peer; a peer lacking any of these is refused.
pub const MANDATORY: u64 = EXTENDED_REFERENCES
    | FUN_TAGS
    | NEW_FUN_TAGS
    | EXTENDED_PIDS_PORTS
    | EXPORT_PTR_TAG
    | BIT_BINARIES
    | NEW_FLOATS
    | UTF8_ATOMS
    | MAP_TAG
    | BIG_CREATION
    | HANDSHAKE_23;

/// Everything we advertise, except PUBLISHED (added for visible nodes): `0xd03cf5fbc`.
pub const OURS: u64 = MANDATORY
    | DIST_MONITOR
    | DIST_MONITOR_NAME
    | UNICODE_IO
    | SMALL_ATOM_TAGS
    | SEND_SENDER
    | EXIT_PAYLOAD
    | FRAGMENTS
    | UNLINK_ID
    | SPAWN
    | V4_NC
    | ALIAS;

/// The flags for a visible (`published`) or hidden node.
pub fn advertised(visible: bool) -> u64 {
    if visible {
        OURS | PUBLISHED
    } else {
        OURS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_flags_are_the_verified_set() {
        assert_eq!(OURS, 0xd_03cf_5fbc);
        assert_eq!(advertised(true), 0xd_03cf_5fbd);
        assert_eq!(OURS & (ATOM_CACHE | DIST_HDR_ATOM_CACHE), 0);
        assert_ne!(OURS & FRAGMENTS, 0);
    }
}
