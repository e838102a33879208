//! Fuzzes the bulk channel's frame decoder with a run of frames, as a replica or a writer
//! would read them from a hostile peer: nothing may panic, no frame over the limit is taken,
//! and a frame that decodes writes back to the same bytes.
#![no_main]

use bytes::BytesMut;
use cluster::data::wire::{Codec, Frame};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::new(1 << 16);
    let mut buf = BytesMut::from(data);
    while let Ok(Some((frame, size))) = codec.decode(&mut buf) {
        assert!(size <= (1 << 16) + 4);
        let mut out = BytesMut::new();
        frame.write(&mut out);
        assert_eq!(Frame::parse(out[4], &out[5..]).ok(), Some(frame));
    }
});
