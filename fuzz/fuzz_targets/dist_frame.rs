//! Fuzzes the connected-channel decoders: the frame header, both frame layouts, the
//! control-message decoder and the term decoder behind them, the `gen_call` sniffer, and the
//! reassembly of fragments. None may panic, and nothing may allocate beyond what the input
//! could hold.
#![no_main]

use bytes::Bytes;
use cluster::dist::proto::frame::{decode_frame, frame_len, sniff_frame_call, Framing, Inbound};
use cluster::dist::proto::reassembly::Reassembly;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame_len(data);
    let bytes = Bytes::copy_from_slice(data);
    for framing in [Framing::PassThrough, Framing::Header] {
        let _ = decode_frame(&bytes, framing);
        let _ = sniff_frame_call(&bytes, framing);
    }
    // The input as a run of length-prefixed frames into one reassembly table.
    let mut r = Reassembly::new(Framing::Header, 1 << 16, 4);
    let mut at = 0;
    while let Some(len) = frame_len(&data[at..]) {
        let end = (at + 4).saturating_add(len).min(data.len());
        let frame = bytes.slice(at + 4..end);
        at = end;
        match decode_frame(&frame, Framing::Header) {
            Ok(Inbound::Start { seq, count, control, payload }) => {
                let _ = r.start(seq, count, control, payload);
            }
            Ok(Inbound::Cont { seq, index, payload }) => {
                let _ = r.cont(seq, index, payload);
            }
            _ => {}
        }
        assert!(r.held() <= 1 << 16);
    }
});
