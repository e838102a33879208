//! `cluster kv`: the data tier from a shell, like `etcdctl get/put`. It calls the `data`
//! process of a data node through the distribution protocol, exactly as Erlang or Elixir
//! would (`gen_server:call({data, Node}, Request)`), so routing by bucket, forwarding from a
//! replica to its data_contact and stale marking all apply.
//!
//! Values are Erlang terms in Erlang syntax (`'<<"hello">>'`, `'#{hp => 10}'`, `42`); keys and
//! buckets are text and travel as binaries. Without `--node`, the first online data_contact
//! (then data_service) the beacon knows is asked.
//!
//! Exit codes: 0 done; 1 not found (get), or a compare-and-set conflict; 2 anything else that
//! went wrong (a bad value, an error reply, no data node).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{output, GlobalOpts, Usage};
use cluster::beacon::BeaconClient;
use cluster::dist::term::{atom, binary, int, tuple, Term};
use cluster::dist::{Dest, Node, NodeName};

/// Arguments of `cluster kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// The data node to ask [default: a data node the beacon knows].
    #[arg(long, global = true, value_name = "NODE")]
    node: Option<NodeName>,
    /// The beacon, to find a data node [default: env CLUSTER_BEACON, then the roles file's].
    #[arg(long, global = true, env = "CLUSTER_BEACON", value_name = "NODE")]
    beacon: Option<NodeName>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, global = true, value_name = "SECS", default_value = "10", value_parser = super::parse_secs)]
    timeout: f64,
    #[command(subcommand)]
    op: Op,
}

#[derive(Debug, Subcommand)]
enum Op {
    /// Print a key's value (exit 1 when absent).
    Get {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Wait (up to 4 s) until the node has applied this version: read-your-writes on a
        /// replica.
        #[arg(long, value_name = "VERSION")]
        min_version: Option<u64>,
    },
    /// Store a value (an Erlang term); prints the version it was written at.
    Put {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The value, in Erlang term syntax, e.g. '<<"hello">>' or '#{hp => 10}'.
        value: String,
        /// Compare-and-set: write only if the key is at this version (0: only if absent).
        #[arg(long, value_name = "VERSION")]
        expect: Option<u64>,
    },
    /// Remove a key.
    Delete {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// List a bucket's keys, values and versions, in key order.
    List {
        /// The bucket.
        bucket: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many (the node caps it at 10000, and at about 16 MiB).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Start after this key (to page through a large bucket).
        #[arg(long, value_name = "KEY")]
        after: Option<String>,
    },
    /// List the buckets.
    Buckets,
    /// The node's data status: role, version, lag, whether its reads are stale.
    Status,
}

fn b(s: &str) -> Term {
    binary(s.to_owned())
}

pub fn run(global: &GlobalOpts, args: KvArgs) -> anyhow::Result<ExitCode> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let cookie = super::session::cookie(global)?;
    let beacon = settings.beacon(args.beacon.clone());
    let request = match &args.op {
        Op::Get {
            bucket,
            key,
            min_version,
        } => {
            let mut items = vec![atom("get"), b(bucket), b(key)];
            if let Some(v) = min_version {
                items.push(int(*v as i64));
            }
            tuple(items)
        }
        Op::Put {
            bucket,
            key,
            value,
            expect,
        } => {
            let value = cluster::dist::term::parse(value)
                .map_err(|e| Usage(format!("the value is not an Erlang term: {e}")))?;
            let mut items = vec![atom("put"), b(bucket), b(key), value];
            if let Some(v) = expect {
                items.push(int(*v as i64));
            }
            tuple(items)
        }
        Op::Delete { bucket, key } => tuple(vec![atom("delete"), b(bucket), b(key)]),
        Op::List {
            bucket,
            prefix,
            limit,
            after,
        } => {
            let mut items = vec![
                atom("list"),
                b(bucket),
                b(prefix),
                int((*limit).min(i64::MAX as u64) as i64),
            ];
            if let Some(a) = after {
                items.push(b(a));
            }
            tuple(items)
        }
        Op::Buckets => atom("buckets"),
        Op::Status => atom("status"),
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    let result = super::runtime()?.block_on(async {
        let target_kind = args.node.as_ref().unwrap_or(&beacon);
        let node = super::session::hidden_node(&settings, cookie, target_kind).await?;
        let target = match &args.node {
            Some(n) => n.clone(),
            None => find_data_node(&node, &beacon).await?,
        };
        let reply = node
            .call(&Dest::name("data", &target), request, timeout)
            .await
            .with_context(|| format!("no answer from the data process on {target}"))?;
        let code = show(&args, &target, reply)?;
        node.shutdown().await;
        Ok(code)
    });
    // Whatever went wrong, `kv` exits 2: 1 is reserved for "not found" and conflicts.
    result.map_err(|e: anyhow::Error| e.context(Exit2))
}

/// Marks an error as exit code 2 (it prints as nothing: the causes say what went wrong).
#[derive(Debug, thiserror::Error)]
#[error("")]
pub struct Exit2;

/// The first online data node the beacon knows: data_contacts first, then data_services.
async fn find_data_node(node: &Node, beacon: &NodeName) -> anyhow::Result<NodeName> {
    let nodes = BeaconClient::new(node.clone(), beacon.clone())
        .nodes()
        .await
        .with_context(|| {
            format!("cannot ask the beacon {beacon} for a data node (or give --node)")
        })?;
    let mut found: Vec<(u8, &str)> = nodes
        .iter()
        .filter(|n| n.is_online())
        .filter_map(|n| match n.resource.as_str() {
            "data_contact" => Some((0, n.node.as_str())),
            "data_service" => Some((1, n.node.as_str())),
            _ => None,
        })
        .collect();
    found.sort_unstable();
    let Some((_, name)) = found.first() else {
        return Err(anyhow!(
            "the beacon {beacon} knows no online data node (data_contact or data_service); give --node"
        ));
    };
    Ok(NodeName::parse(name)?)
}

/// Prints the reply; returns the exit code.
fn show(args: &KvArgs, target: &NodeName, reply: Term) -> anyhow::Result<ExitCode> {
    // A cut-off replica marks its reads: say so on stderr, print the inner reply.
    let (reply, stale) = match reply.as_tuple() {
        Some([tag, lag, inner]) if tag.is_atom("stale") => (inner.clone(), Some(lag.clone())),
        _ => (reply, None),
    };
    if let Some(lag) = &stale {
        let get = |k: &str| lag.map_get_atom(k).and_then(Term::as_int).unwrap_or(0);
        eprintln!(
            "cluster: stale read: {target} is cut off from its data_contact ({} versions, {} ms behind as far as it knows)",
            get("versions"),
            get("ms")
        );
    }
    if let Some([tag, why]) = reply.as_tuple() {
        if tag.is_atom("error") {
            return error_reply(args, target, why);
        }
    }
    let ok_payload = |r: &Term| match r.as_tuple() {
        Some([ok, x]) if ok.is_atom("ok") => Some(x.clone()),
        _ => None,
    };
    match &args.op {
        Op::Get { bucket, key, .. } => {
            if reply.is_atom("not_found") {
                if args.json {
                    output::print_json(&json!({"bucket": bucket, "key": key, "found": false}))?;
                } else {
                    eprintln!("cluster: {bucket}/{key} not found on {target}");
                }
                return Ok(ExitCode::from(1));
            }
            let Some([_, value, version]) = reply.as_tuple() else {
                return Err(anyhow!("unexpected reply from {target}: {reply}"));
            };
            if args.json {
                output::print_json(&json!({
                    "bucket": bucket, "key": key, "found": true,
                    "value": value.to_string(), "version": version.as_int(),
                    "stale": stale.is_some(),
                }))?;
            } else {
                println!("{value}");
            }
        }
        Op::Put { .. } => {
            let Some(v) = ok_payload(&reply) else {
                return Err(anyhow!("unexpected reply from {target}: {reply}"));
            };
            if args.json {
                output::print_json(&json!({"version": v.as_int()}))?;
            } else {
                println!("version {v}");
            }
        }
        Op::Delete { .. } => {
            if args.json {
                output::print_json(&json!({"ok": true}))?;
            }
        }
        Op::List { .. } => {
            let items = ok_payload(&reply)
                .and_then(|l| l.as_list().map(<[Term]>::to_vec))
                .ok_or_else(|| anyhow!("unexpected reply from {target}: {reply}"))?;
            let rows: Vec<(String, String, i64)> = items
                .iter()
                .filter_map(|t| match t.as_tuple() {
                    Some([k, v, ver]) => Some((
                        k.as_binary()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .unwrap_or_else(|| k.to_string()),
                        v.to_string(),
                        ver.as_int().unwrap_or(0),
                    )),
                    _ => None,
                })
                .collect();
            if args.json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(k, v, ver)| json!({"key": k, "value": v, "version": ver}))
                    .collect();
                output::print_json(&v)?;
            } else {
                let mut t = output::table(&["KEY", "VALUE", "VERSION"]);
                for (k, v, ver) in &rows {
                    t.add_row(vec![k.clone(), v.clone(), ver.to_string()]);
                }
                output::print_table(&t)?;
            }
        }
        Op::Buckets => {
            let items = ok_payload(&reply)
                .and_then(|l| l.as_list().map(<[Term]>::to_vec))
                .ok_or_else(|| anyhow!("unexpected reply from {target}: {reply}"))?;
            let names: Vec<String> = items
                .iter()
                .map(|t| {
                    t.as_binary()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_else(|| t.to_string())
                })
                .collect();
            if args.json {
                output::print_json(&names)?;
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }
        Op::Status => {
            let m = ok_payload(&reply)
                .ok_or_else(|| anyhow!("unexpected reply from {target}: {reply}"))?;
            // Integers stay numbers in JSON; binaries and atoms are their text.
            let pairs: Vec<(String, serde_json::Value)> = m
                .map_pairs()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let v = match v {
                        Term::Int(i) => serde_json::Value::from(*i),
                        Term::Binary(b) => String::from_utf8_lossy(b).into_owned().into(),
                        other => other.to_string().into(),
                    };
                    (k.to_string(), v)
                })
                .collect();
            if args.json {
                let obj: serde_json::Map<String, serde_json::Value> = pairs.into_iter().collect();
                output::print_json(&obj)?;
            } else {
                let mut t = output::table(&["FIELD", "VALUE"]);
                for (k, v) in pairs {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    t.add_row(vec![k, text]);
                }
                output::print_table(&t)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn error_reply(args: &KvArgs, target: &NodeName, why: &Term) -> anyhow::Result<ExitCode> {
    let text = match why.as_tuple() {
        Some([tag, current]) if tag.is_atom("conflict") => {
            let msg = format!(
                "conflict: the key is at version {current}{}",
                if current.as_int() == Some(0) {
                    " (absent)"
                } else {
                    ""
                }
            );
            if args.json {
                output::print_json(&json!({"conflict": true, "current": current.as_int()}))?;
            }
            eprintln!("cluster: {msg}");
            return Ok(ExitCode::from(1));
        }
        Some([tag, size, max]) if tag.is_atom("too_large") => format!(
            "the value is {size} bytes as a term; {target} takes at most {max} (its --max-value-size)"
        ),
        Some([tag, bucket]) if tag.is_atom("no_route") => {
            format!("no route covers bucket {bucket} (see [data] routes in the roles file)")
        }
        Some([tag, path]) if tag.is_atom("routing_loop") => {
            format!("the routing tables send this bucket round in a loop: {path}")
        }
        Some([tag, node]) if tag.is_atom("unavailable") || tag.is_atom("timeout") => {
            format!("{node} did not take the request ({tag})")
        }
        Some([tag, text]) if tag.is_atom("badarg") || tag.is_atom("store") => match text {
            Term::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            other => other.to_string(),
        },
        _ => why.to_string(),
    };
    Err(anyhow!("{target}: {text}"))
}
