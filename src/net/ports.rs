//! Where peers listen, remembered for a moment: one port-mapper request per host per burst
//! instead of one per peer.
//!
//! A node joining a full mesh dials every other node at once. Asked one PORT_PLEASE2 each, the
//! port mapper on a host of a hundred nodes gets ten thousand connections within a second or
//! two while every node on the host is busy; its accept queue overflows, dropped SYNs are
//! retried by the kernel a second later, and dials (even registrations of nodes still
//! starting) time out. So a dial asks the host's port mapper for **every** registration at
//! once (the NODES request of `cluster epmd`), and other dials to that host within
//! [`FRESH`] use the answer. Concurrent dials to one host wait for a single request.
//!
//! Only a fresh answer is used, and only for names it lists; anything else asks PORT_PLEASE2,
//! which stays the authority. A port mapper that does not know NODES (OTP's `epmd`) is
//! remembered as such, and its host is asked per name as `erl` does. A dial that fails to
//! connect to a remembered port forgets the host's listing, so the next dial asks again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::epmd::{ClientError, EpmdClient, NodeEntry};

/// How long a host's listing is used.
pub const FRESH: Duration = Duration::from_secs(1);
/// Hosts remembered at most; past it the memory starts over.
const MAX_HOSTS: usize = 4096;

#[derive(Default)]
struct Host {
    /// The listing and when it was read.
    listing: Option<(Instant, HashMap<String, NodeEntry>)>,
    /// The port mapper closed a NODES request: it is OTP's `epmd`.
    legacy: bool,
}

/// The listings of the hosts a node dials, shared by its dials.
#[derive(Default)]
pub struct PortCache {
    hosts: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Host>>>>,
}

impl PortCache {
    fn host(&self, host: &str) -> Arc<tokio::sync::Mutex<Host>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(host) {
            hosts.clear();
        }
        hosts.entry(host.to_string()).or_default().clone()
    }

    /// Where `alive` listens on the host `epmd` serves: from a fresh listing when one has
    /// it (then `.1` is true), otherwise from the port mapper (PORT_PLEASE2). `None`: not
    /// registered.
    pub async fn lookup(
        &self,
        epmd: &EpmdClient,
        host: &str,
        alive: &str,
    ) -> Result<(Option<NodeEntry>, bool), ClientError> {
        let slot = self.host(host);
        {
            // One request per host at a time: dials that arrive together wait for it.
            let mut h = slot.lock().await;
            if !h.legacy {
                let fresh = h
                    .listing
                    .as_ref()
                    .is_some_and(|(at, _)| at.elapsed() < FRESH);
                if !fresh {
                    match epmd.nodes().await {
                        Ok(Some(entries)) => {
                            let by_name = entries.into_iter().map(|e| (e.name.clone(), e));
                            h.listing = Some((Instant::now(), by_name.collect()));
                        }
                        Ok(None) => h.legacy = true,
                        // The per-name request below says what is wrong, or works.
                        Err(_) => h.listing = None,
                    }
                }
                if let Some(found) = h.listing.as_ref().and_then(|(_, l)| l.get(alive)) {
                    return Ok((Some(found.clone()), true));
                }
            }
        }
        Ok((epmd.port_please(alive).await?, false))
    }

    /// A dial to a port read from `host`'s listing failed: do not use the listing again.
    pub fn forget(&self, host: &str) {
        let slot = self
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .cloned();
        if let Some(slot) = slot {
            if let Ok(mut h) = slot.try_lock() {
                h.listing = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epmd::server::{Server, ServerConfig};
    use crate::epmd::Registration;
    use tokio_util::sync::CancellationToken;

    async fn port_mapper() -> (u16, CancellationToken) {
        let server = Server::bind(ServerConfig {
            port: 0,
            addresses: vec!["127.0.0.1".parse().unwrap()],
            ..ServerConfig::default()
        })
        .await
        .unwrap();
        let port = server.local_addrs()[0].port();
        let stop = CancellationToken::new();
        tokio::spawn(server.run(stop.clone()));
        (port, stop)
    }

    async fn register(port: u16, name: &str, at: u16) -> Registration {
        EpmdClient::new("127.0.0.1", port)
            .register(NodeEntry::new(name, at))
            .await
            .unwrap()
    }

    async fn port_of(cache: &PortCache, epmd: &EpmdClient, alive: &str) -> Option<u16> {
        let (found, _) = cache.lookup(epmd, "127.0.0.1", alive).await.unwrap();
        found.map(|e| e.port)
    }

    #[tokio::test]
    async fn a_listing_answers_the_names_it_holds_and_the_port_mapper_the_rest() {
        let (port, stop) = port_mapper().await;
        let epmd = EpmdClient::new("127.0.0.1", port);
        let cache = PortCache::default();
        let _a = register(port, "a", 4001).await;
        let (found, listed) = cache.lookup(&epmd, "127.0.0.1", "a").await.unwrap();
        assert_eq!(found.map(|e| e.port), Some(4001));
        assert!(listed);
        // Registered after the listing was read: not in it, so asked by name.
        let _b = register(port, "b", 4002).await;
        let (found, listed) = cache.lookup(&epmd, "127.0.0.1", "b").await.unwrap();
        assert_eq!(found.map(|e| e.port), Some(4002));
        assert!(!listed, "asked by name");
        assert!(cache
            .lookup(&epmd, "127.0.0.1", "nobody")
            .await
            .unwrap()
            .0
            .is_none());
        stop.cancel();
    }

    #[tokio::test]
    async fn a_forgotten_or_stale_listing_is_read_again() {
        let (port, stop) = port_mapper().await;
        let epmd = EpmdClient::new("127.0.0.1", port);
        let cache = PortCache::default();
        let a = register(port, "a", 4001).await;
        assert_eq!(port_of(&cache, &epmd, "a").await, Some(4001));
        // `a` restarts on another port; the dial to the old one failed.
        drop(a);
        let mut again = None;
        for _ in 0..100 {
            match EpmdClient::new("127.0.0.1", port)
                .register(NodeEntry::new("a", 4009))
                .await
            {
                Ok(r) => {
                    again = Some(r);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let _again = again.expect("the name is released");
        cache.forget("127.0.0.1");
        assert_eq!(port_of(&cache, &epmd, "a").await, Some(4009));
        stop.cancel();
    }

    #[tokio::test]
    async fn a_port_mapper_without_nodes_is_asked_by_name() {
        // A port mapper that closes every NODES request, as OTP's epmd does, and answers
        // PORT_PLEASE2 for `a`.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut head = [0u8; 3];
                if s.read_exact(&mut head).await.is_err() {
                    continue;
                }
                let len = u16::from_be_bytes([head[0], head[1]]) as usize;
                let mut rest = vec![0u8; len - 1];
                let _ = s.read_exact(&mut rest).await;
                if head[2] == b'z' {
                    let mut out = bytes::BytesMut::new();
                    crate::epmd::proto::encode_port2_reply(
                        Some(&NodeEntry::new("a", 4001)),
                        &mut out,
                    );
                    let _ = s.write_all(&out).await;
                }
            }
        });
        let epmd = EpmdClient::new("127.0.0.1", port);
        let cache = PortCache::default();
        for _ in 0..3 {
            let (found, listed) = cache.lookup(&epmd, "127.0.0.1", "a").await.unwrap();
            assert_eq!(found.map(|e| e.port), Some(4001));
            assert!(!listed);
        }
        // One NODES request (refused), then one PORT_PLEASE2 per lookup.
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 4);
    }
}
