//! Fuzzes what `cluster_server` and `cluster_config` read from the network: any external term
//! decoded from the input is offered as a server message, a call and a config push. Nothing
//! may panic; whatever decodes re-encodes to a term that decodes to the same message.
#![no_main]

use bytes::Bytes;
use cluster::dist::term::decode_exact;
use cluster::registry::config::parse_push;
use cluster::registry::wire::{Peer, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(term) = decode_exact(&Bytes::copy_from_slice(data)) else {
        return;
    };
    if let Ok(p) = Peer::decode(&term) {
        assert_eq!(Peer::decode(&p.encode()).as_ref(), Ok(&p));
    }
    if let Ok(Some(r)) = Request::decode(&term) {
        assert_eq!(Request::decode(&r.encode()), Ok(Some(r)));
    }
    let _ = parse_push(&term);
});
