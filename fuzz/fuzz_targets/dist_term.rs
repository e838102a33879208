//! Fuzzes the term decoder: whatever decodes must encode back to bytes that decode to the
//! same term, with the encoder's length prediction exact, and printing must not panic.
#![no_main]

use bytes::Bytes;
use cluster::dist::term;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    if let Ok((t, end)) = term::decode(&buf, 0) {
        assert!(end <= data.len());
        let again = term::encode_to_vec(&t);
        assert_eq!(again.len(), term::encoded_len(&t));
        let back = term::decode_exact(&Bytes::from(again)).expect("re-decodes");
        assert_eq!(back, t);
        let _ = term::Truncated(&t, 1000).to_string();
    }
});
