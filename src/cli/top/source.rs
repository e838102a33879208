//! Where `cluster top`'s data comes from: tasks on our hidden node that talk to the cluster
//! and feed the model [`Update`]s through one bounded channel.
//! - The **beacon** task subscribes to the watched node as a beacon and reads its table
//!   (again after a resync, or when the beacon comes back).
//! - The **members** task follows the watched node's connections: its `cluster_events`
//!   subscription, or, on a plain Erlang node (`noproc`), `erlang:nodes()` through `rex`.
//! - One **poller** per watched node asks for its `stats` (its connections' traffic and its
//!   process queues) every [`POLL_INTERVAL`], or, on a plain Erlang node, `erlang:nodes()` and
//!   `erlang:statistics(io)` through `rex`.
//!
//! Every call has a timeout, and each task waits only on its own node: a stalled node
//! (SIGSTOPped, overloaded) costs its own poller a timeout, which shows as "no answer", and
//! nothing else waits for it. A task that finds the channel full waits; the screen never does.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::model::{BeaconState, Probe, Update};
use cluster::beacon::{BeaconClient, BeaconError, Event, SubscriptionEvent};
use cluster::dist::builtin::cluster_events::{
    self, ClusterEvent, StatsError, SubscribeError, Subscription,
};
use cluster::dist::builtin::rex::{self, RpcError};
use cluster::dist::term::Term;
use cluster::dist::{CallError, Node, NodeName};

/// Updates buffered between the sources and the screen.
pub const UPDATE_CAPACITY: usize = 256;
/// How often each node is polled.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long any one call may take (less than the poll interval, so a silent node is reported
/// within one round).
pub const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long to wait before asking again after the beacon or the members subscription failed.
const RETRY: Duration = Duration::from_secs(3);

/// The running sources.
pub struct Sources {
    node: Node,
    tx: mpsc::Sender<Update>,
    pollers: HashMap<String, CancellationToken>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Sources {
    /// Starts the beacon and members tasks for `target`; the receiver gets every update.
    pub fn start(node: Node, target: NodeName) -> (Sources, mpsc::Receiver<Update>) {
        let (tx, rx) = mpsc::channel(UPDATE_CAPACITY);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(beacon_task(
            node.clone(),
            target.clone(),
            tx.clone(),
            cancel.clone(),
        ));
        tracker.spawn(members_task(
            node.clone(),
            target,
            tx.clone(),
            cancel.clone(),
        ));
        let sources = Sources {
            node,
            tx,
            pollers: HashMap::new(),
            cancel,
            tracker,
        };
        (sources, rx)
    }

    /// Makes the set of polled nodes `names`: starts pollers for new ones, stops the rest.
    pub fn watch(&mut self, names: &[String]) {
        self.pollers.retain(|n, stop| {
            let keep = names.contains(n);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for n in names {
            if self.pollers.contains_key(n) {
                continue;
            }
            let Ok(name) = NodeName::parse(n) else {
                continue; // not a name we could dial; the row shows what is known
            };
            let stop = self.cancel.child_token();
            self.pollers.insert(n.clone(), stop.clone());
            self.tracker
                .spawn(poll_task(self.node.clone(), name, self.tx.clone(), stop));
        }
    }

    /// Stops every task, waiting at most `limit` for them.
    pub async fn stop(self, limit: Duration) {
        self.cancel.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(limit, self.tracker.wait()).await;
    }
}

/// Sends `update`, unless stopped first; false when the screen is gone or we are stopping.
async fn send(tx: &mpsc::Sender<Update>, cancel: &CancellationToken, update: Update) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        r = tx.send(update) => r.is_ok(),
    }
}

/// Sleeps for `d`; false when stopped meanwhile.
async fn pause(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

fn beacon_refusal(e: &BeaconError) -> Option<String> {
    match e {
        // Nothing registered as `beacon` there, or something that does not speak its
        // contract: not a beacon.
        BeaconError::Call {
            source: CallError::NoProc,
            ..
        } => Some("noproc".into()),
        BeaconError::Unexpected { .. } | BeaconError::Refused { .. } => Some(e.to_string()),
        _ => None,
    }
}

async fn beacon_task(
    node: Node,
    target: NodeName,
    tx: mpsc::Sender<Update>,
    cancel: CancellationToken,
) {
    let client = BeaconClient::new(node, target).with_timeout(CALL_TIMEOUT);
    loop {
        // Subscribe first, then read the table: no change can fall between the two.
        let failed = match client.subscribe().await {
            Ok(mut sub) => match client.nodes().await {
                Ok(table) => {
                    if !send(&tx, &cancel, Update::Table(table)).await
                        || !send(&tx, &cancel, Update::Beacon(BeaconState::Live)).await
                    {
                        return;
                    }
                    loop {
                        let ev = tokio::select! {
                            _ = cancel.cancelled() => return,
                            ev = sub.next() => ev,
                        };
                        let update = match ev {
                            None => return,
                            Some(SubscriptionEvent::Beacon(Event::Registered(info))) => {
                                Update::Registered(info)
                            }
                            Some(SubscriptionEvent::Beacon(Event::Offline { node, reason })) => {
                                Update::Offline { node, reason }
                            }
                            Some(SubscriptionEvent::Beacon(Event::Resync)) => {
                                match client.nodes().await {
                                    Ok(t) => Update::Table(t),
                                    Err(e) => {
                                        break Update::Beacon(BeaconState::Lost(e.to_string()))
                                    }
                                }
                            }
                            Some(SubscriptionEvent::BeaconDown { reason }) => {
                                break Update::Beacon(BeaconState::Lost(reason));
                            }
                            Some(SubscriptionEvent::Node(_))
                            | Some(SubscriptionEvent::Beacon(Event::Report { .. })) => continue,
                        };
                        if !send(&tx, &cancel, update).await {
                            return;
                        }
                    }
                }
                Err(e) => Update::Beacon(BeaconState::Lost(e.to_string())),
            },
            Err(e) => match beacon_refusal(&e) {
                Some(why) => Update::Beacon(BeaconState::NotBeacon(why)),
                None => Update::Beacon(BeaconState::Lost(e.to_string())),
            },
        };
        if !send(&tx, &cancel, failed).await || !pause(&cancel, RETRY).await {
            return;
        }
    }
}

async fn members_task(
    node: Node,
    target: NodeName,
    tx: mpsc::Sender<Update>,
    cancel: CancellationToken,
) {
    let mut known = false;
    loop {
        let started = tokio::select! {
            _ = cancel.cancelled() => return,
            r = Subscription::start(&node, &target, CALL_TIMEOUT) => r,
        };
        match started {
            Ok((mut sub, members)) => {
                known = true;
                let visible = members
                    .into_iter()
                    .filter(|m| m.kind == "visible")
                    .map(|m| m.node)
                    .collect();
                if !send(&tx, &cancel, Update::Members(visible)).await {
                    return;
                }
                loop {
                    let ev = tokio::select! {
                        _ = cancel.cancelled() => return,
                        ev = sub.next() => ev,
                    };
                    let update = match ev {
                        None => return,
                        Some(ClusterEvent::TargetDown { .. }) => break,
                        Some(ClusterEvent::Snapshot(m)) => Update::Members(
                            m.into_iter()
                                .filter(|m| m.kind == "visible")
                                .map(|m| m.node)
                                .collect(),
                        ),
                        Some(ClusterEvent::NodeUp { node, kind }) if kind == "visible" => {
                            Update::NodeUp(node)
                        }
                        Some(ClusterEvent::NodeDown { node, kind, reason })
                            if kind == "visible" =>
                        {
                            Update::NodeDown { node, reason }
                        }
                        // Hidden peers are tools like us; queue peaks come from polling.
                        Some(_) => continue,
                    };
                    if !send(&tx, &cancel, update).await {
                        return;
                    }
                }
            }
            Err(SubscribeError::NoProc(_)) => {
                // A plain Erlang node: its connections through rex, every poll interval.
                loop {
                    if let Ok(nodes) = rex::nodes(&node, &target, CALL_TIMEOUT).await {
                        if !send(&tx, &cancel, Update::Members(nodes)).await {
                            return;
                        }
                    }
                    if !pause(&cancel, POLL_INTERVAL).await {
                        return;
                    }
                }
            }
            Err(_) if !known => {
                // Say that nothing is known, so `--once` does not wait for it.
                known = true;
                if !send(&tx, &cancel, Update::Members(Vec::new())).await {
                    return;
                }
            }
            Err(_) => {}
        }
        if !pause(&cancel, RETRY).await {
            return;
        }
    }
}

fn call_probe(e: &CallError) -> Probe {
    match e {
        CallError::Timeout => Probe::NoAnswer,
        CallError::NodeDown => Probe::Unreachable("noconnection".into()),
        other => Probe::Unreachable(other.to_string()),
    }
}

async fn poll_task(
    node: Node,
    name: NodeName,
    tx: mpsc::Sender<Update>,
    cancel: CancellationToken,
) {
    let mut erlang = false;
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let probe = if erlang {
            erlang_probe(&node, &name).await
        } else {
            match cluster_events::stats(&node, &name, CALL_TIMEOUT).await {
                Ok(s) => Probe::Stats(s),
                Err(StatsError::Call(CallError::NoProc) | StatsError::Unsupported(_)) => {
                    erlang = true;
                    erlang_probe(&node, &name).await
                }
                Err(StatsError::Call(e)) => call_probe(&e),
                Err(e @ StatsError::Unexpected { .. }) => Probe::Unreachable(e.to_string()),
            }
        };
        let update = Update::Polled {
            node: name.to_string(),
            probe,
        };
        if !send(&tx, &cancel, update).await {
            return;
        }
    }
}

/// Polls a plain Erlang node through `rex`: its connections, then its I/O byte totals.
async fn erlang_probe(node: &Node, name: &NodeName) -> Probe {
    let nodes = match rex::nodes(node, name, CALL_TIMEOUT).await {
        Ok(n) => n,
        Err(RpcError::Call(CallError::NoProc)) => {
            return Probe::Unreachable("neither cluster_events stats nor rex".into())
        }
        Err(RpcError::Call(e)) => return call_probe(&e),
        Err(e) => return Probe::Unreachable(e.to_string()),
    };
    let io = rex::call(
        node,
        name,
        "erlang",
        "statistics",
        vec![cluster::dist::term::atom("io")],
        CALL_TIMEOUT,
    )
    .await
    .ok()
    .and_then(|t| parse_io(&t));
    Probe::Erlang { nodes, io }
}

/// `{{input, In}, {output, Out}}`, as `erlang:statistics(io)` answers.
fn parse_io(t: &Term) -> Option<(u64, u64)> {
    let [i, o] = t.as_tuple()? else {
        return None;
    };
    let field = |t: &Term, tag: &str| -> Option<u64> {
        match t.as_tuple()? {
            [k, v] if k.is_atom(tag) => u64::try_from(v.as_int()?).ok(),
            _ => None,
        }
    };
    Some((field(i, "input")?, field(o, "output")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::dist::term::{atom, int, tuple};

    #[test]
    fn io_statistics_decode_and_anything_else_does_not() {
        let ok = tuple(vec![
            tuple(vec![atom("input"), int(1200)]),
            tuple(vec![atom("output"), int(3400)]),
        ]);
        assert_eq!(parse_io(&ok), Some((1200, 3400)));
        let swapped = tuple(vec![
            tuple(vec![atom("output"), int(1)]),
            tuple(vec![atom("input"), int(2)]),
        ]);
        assert_eq!(parse_io(&swapped), None);
        let negative = tuple(vec![
            tuple(vec![atom("input"), int(-1)]),
            tuple(vec![atom("output"), int(2)]),
        ]);
        assert_eq!(parse_io(&negative), None);
        assert_eq!(parse_io(&atom("undefined")), None);
    }
}
