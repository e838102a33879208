//! Fuzzes the change-record decoder (what the writer's log holds and replicas receive): no
//! input may panic, and a record that decodes encodes back to the same bytes.
#![no_main]

use cluster::data::change::Change;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Change::peek_version(data);
    if let Ok(c) = Change::decode(data) {
        assert_eq!(c.encode(), data);
    }
});
