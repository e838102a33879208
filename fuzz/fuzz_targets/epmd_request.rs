//! Fuzzes the port mapper's request framing and decoding: whatever bytes arrive, `check` and
//! `decode` must return a value or an error, never panic, and a decoded request must encode
//! back to a request that decodes to itself.
#![no_main]

use cluster::epmd::proto::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(total) = Request::check(data) {
        if let Ok(request) = Request::decode(&data[2..total]) {
            let bytes = request.to_bytes();
            let again = Request::decode(&bytes[2..]).expect("re-encoded request decodes");
            assert_eq!(again, request);
        }
    }
    let _ = Request::decode(data);
});
