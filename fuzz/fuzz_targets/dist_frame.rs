//! Fuzzes the connected-channel decoders: the frame header, the control-message decoder and
//! the term decoder behind it. None may panic, and nothing may allocate beyond what the input
//! could hold.
#![no_main]

use bytes::Bytes;
use cluster::dist::proto::frame::{decode_data, frame_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame_len(data, 1 << 20);
    let _ = decode_data(&Bytes::copy_from_slice(data));
});
