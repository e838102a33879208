//! An in-memory transport: nodes in one process reach each other through [`tokio::io::duplex`]
//! pipes, found by name in a shared [`MemoryTransport`] hub. It exists so the node runtime's
//! tests run with no sockets and no port mapper, and can run under a paused clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::{
    BoxStream, DialError, ListenError, ListenSpec, Listener, PeerAddr, Publication, PublishError,
    PublishInfo, Transport,
};
use crate::dist::NodeName;

/// Connections waiting to be accepted per listener.
const BACKLOG: usize = 128;
/// Bytes buffered in each direction of a pipe, like a socket buffer.
const PIPE_BUFFER: usize = 256 * 1024;

/// Where a listener receives its incoming streams.
type Incoming = mpsc::Sender<(BoxStream, PeerAddr)>;

#[derive(Default)]
struct Hub {
    listeners: Mutex<HashMap<String, (u64, Incoming)>>,
    creations: Mutex<HashMap<String, u32>>,
    next: AtomicU64,
}

/// A shared in-memory network; clone it into every node of a test.
#[derive(Clone, Default)]
pub struct MemoryTransport {
    hub: Arc<Hub>,
}

impl MemoryTransport {
    /// A fresh, empty network.
    pub fn new() -> MemoryTransport {
        MemoryTransport::default()
    }

    /// Opens a raw stream to `peer`'s listener, as a misbehaving client would (tests).
    pub fn raw_dial(&self, peer: &str) -> Option<BoxStream> {
        let tx = self.hub.listeners.lock().ok()?.get(peer)?.1.clone();
        let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
        let n = self.hub.next.fetch_add(1, Ordering::Relaxed);
        tx.try_send((Box::new(theirs), PeerAddr::Memory(n))).ok()?;
        Some(Box::new(ours))
    }
}

struct MemoryListener {
    hub: Arc<Hub>,
    name: String,
    id: u64,
    rx: mpsc::Receiver<(BoxStream, PeerAddr)>,
}

impl Listener for MemoryListener {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxStream, PeerAddr)>> {
        async move {
            match self.rx.recv().await {
                Some(c) => Ok(c),
                None => std::future::pending().await,
            }
        }
        .boxed()
    }

    fn port(&self) -> u16 {
        0
    }

    fn address(&self) -> String {
        format!("memory:{}", self.name)
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        if let Ok(mut l) = self.hub.listeners.lock() {
            if l.get(&self.name).is_some_and(|(id, _)| *id == self.id) {
                l.remove(&self.name);
            }
        }
    }
}

struct MemoryPublication(u32);

impl Publication for MemoryPublication {
    fn creation(&self) -> u32 {
        self.0
    }

    fn closed(&mut self) -> BoxFuture<'_, ()> {
        std::future::pending().boxed()
    }
}

impl Transport for MemoryTransport {
    fn listen<'a>(
        &'a self,
        name: &'a NodeName,
        _spec: &'a ListenSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Listener>, ListenError>> {
        async move {
            let (tx, rx) = mpsc::channel(BACKLOG);
            let id = self.hub.next.fetch_add(1, Ordering::Relaxed);
            let mut listeners = self
                .hub
                .listeners
                .lock()
                .map_err(|_| ListenError::Taken(name.to_string()))?;
            if listeners.contains_key(name.as_str()) {
                return Err(ListenError::Taken(name.to_string()));
            }
            listeners.insert(name.to_string(), (id, tx));
            Ok(Box::new(MemoryListener {
                hub: self.hub.clone(),
                name: name.to_string(),
                id,
                rx,
            }) as Box<dyn Listener>)
        }
        .boxed()
    }

    fn dial<'a>(
        &'a self,
        peer: &'a NodeName,
        _limit: Duration,
    ) -> BoxFuture<'a, Result<BoxStream, DialError>> {
        async move {
            self.raw_dial(peer.as_str())
                .ok_or_else(|| DialError::NotRegistered {
                    alive: peer.alive().into(),
                    host: peer.host().into(),
                    hint: Vec::new(),
                })
        }
        .boxed()
    }

    fn publish<'a>(
        &'a self,
        name: &'a NodeName,
        _info: &'a PublishInfo,
    ) -> BoxFuture<'a, Result<Box<dyn Publication>, PublishError>> {
        async move {
            let mut creations = self.hub.creations.lock().unwrap_or_else(|e| e.into_inner());
            let c = creations.entry(name.to_string()).or_insert(0);
            *c += 1;
            Ok(Box::new(MemoryPublication(*c)) as Box<dyn Publication>)
        }
        .boxed()
    }
}
