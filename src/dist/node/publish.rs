//! Staying published with the port mapper. A registration lives as long as its connection, so
//! when the port mapper restarts the node registers again (real `erl` does not, and becomes
//! unreachable). The new registration comes with a new creation, which the node then uses:
//! pids, references and handshakes made from then on carry it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::{lock, Node};
use crate::net::{Publication, PublishInfo};

/// First pause before registering again; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);

pub(super) async fn keep_published(node: Node, mut publication: Box<dyn Publication>) {
    let cfg = node.config().clone();
    let info = PublishInfo {
        port: node.listen_port(),
        visible: cfg.visible,
        extra: cfg.role.clone().unwrap_or_default().into_bytes(),
    };
    loop {
        tokio::select! {
            _ = node.stopped() => return,
            _ = publication.closed() => {}
        }
        warn!("port mapper connection lost; registering again");
        let mut delay = FIRST_RETRY;
        loop {
            tokio::select! {
                _ = node.stopped() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            match cfg.transport.publish(&cfg.name, &info).await {
                Ok(p) => {
                    let creation = p.creation();
                    node.inner.creation.store(creation, Ordering::Relaxed);
                    lock(&node.inner.procs).set_creation(creation);
                    info!(creation, "registered with the port mapper again");
                    publication = p;
                    break;
                }
                Err(e) => {
                    debug!("registering again failed: {e}");
                    delay = (delay * 2).min(MAX_RETRY);
                }
            }
        }
    }
}
