//! Fuzzes the kv line protocol: splitting a byte stream into lines (with over-long lines
//! dropped whole) and parsing each. Nothing may panic, and the buffer never holds more than a
//! line's limit plus one read.
#![no_main]

use cluster::data::line::{parse, split_lines, MAX_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = Vec::new();
    let mut discarding = false;
    for chunk in data.chunks(977) {
        buf.extend_from_slice(chunk);
        for line in split_lines(&mut buf, &mut discarding).into_iter().flatten() {
            assert!(line.len() <= MAX_LINE);
            let _ = parse(&line);
        }
        assert!(buf.len() <= MAX_LINE + 977);
    }
});
