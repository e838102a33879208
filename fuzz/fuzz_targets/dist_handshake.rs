//! Fuzzes both sides of the distribution handshake with arbitrary frames: every step must
//! return a value or an error, never panic, whatever a peer sends.
#![no_main]

use cluster::dist::proto::flags;
use cluster::dist::proto::handshake::{Acceptor, Initiator, LocalInfo, Status};
use cluster::dist::{Cookie, NodeName};
use libfuzzer_sys::fuzz_target;

fn local(name: &str) -> LocalInfo {
    LocalInfo {
        name: NodeName::parse(name).expect("valid"),
        flags: flags::advertised(true),
        creation: 1,
    }
}

fuzz_target!(|data: &[u8]| {
    // Split the input into up to three frames.
    let mut parts = data.splitn(3, |&b| b == 0xff);
    let first = parts.next().unwrap_or_default();
    let second = parts.next().unwrap_or_default();
    let third = parts.next().unwrap_or_default();

    let mut acc = Acceptor::new(local("b@127.0.0.1"), Cookie::new("c"), 7);
    if acc.on_name(first).is_ok() {
        let _ = acc.verdict(Status::Ok);
        let _ = acc.on_reply(second);
    }

    let mut ini = Initiator::new(
        local("a@127.0.0.1"),
        NodeName::parse("b@127.0.0.1").expect("valid"),
        Cookie::new("c"),
        9,
    );
    ini.send_name();
    if ini.on_status(first).is_ok() && ini.on_challenge(second).is_ok() {
        let _ = ini.on_ack(third);
    }
});
