//! Fuzzes the client-side reply decoders, which read whatever a port mapper (or an impostor
//! listening on its port) sends back.
#![no_main]

use cluster::epmd::proto::{
    decode_dump_reply, decode_names_reply, decode_port2_reply, Alive2Reply, ControlReply,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_names_reply(data);
    let _ = decode_port2_reply(data);
    let _ = Alive2Reply::decode(data);
    let _ = ControlReply::decode(data);
    if let Ok(dump) = decode_dump_reply(data) {
        let _ = dump.lines();
    }
});
