//! Fuzzes the term text parser: it must not panic on any text, and whatever parses must print
//! to text that parses back to the same term and prints the same again.
#![no_main]

use cluster::dist::term;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = term::parse(text) {
        let printed = t.to_string();
        let back = match term::parse(&printed) {
            Ok(back) => back,
            Err(e) => panic!("{printed:?} does not parse back: {e}"),
        };
        assert_eq!(back, t);
        assert_eq!(back.to_string(), printed);
    }
});
