//! Fuzzes the connected-channel decoders: the frame splitter, the ETF validator, and the
//! control-message decoder. None may panic or allocate beyond the input's size.
#![no_main]

use bytes::BytesMut;
use cluster::dist::codec::{decode_data, FrameCodec};
use cluster::dist::term;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
    let _ = decode_data(data);
    if let Ok((t, len)) = term::decode(data) {
        assert!(len <= data.len());
        // What decodes must encode back to something that decodes to the same term.
        let mut again = Vec::new();
        term::encode(&t, &mut again);
        assert_eq!(term::decode(&again).map(|(t2, _)| t2), Ok(t));
    }
});
