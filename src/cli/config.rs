//! `cluster config`: the cluster-wide shared configuration (held by the beacon's
//! `cluster_config`), like `etcdctl get/put/watch`. Values are Erlang terms
//! (`'<<"open">>'`, `42`, `'#{max => 5}'`); `--text` stores the argument as a UTF-8 binary
//! as it is. `get` exits 1 when the key is not set.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{output, GlobalOpts, Usage};
use cluster::dist::term::{binary, Term};
use cluster::dist::NodeName;
use cluster::registry::config::{parse_push, ConfigClient, ConfigError, Value};

/// Arguments of `cluster config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The node holding the config [default: the beacon].
    #[arg(long, global = true, env = "CLUSTER_BEACON", value_name = "NODE")]
    beacon: Option<NodeName>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, global = true, value_name = "SECS", default_value = "10", value_parser = super::parse_secs)]
    timeout: f64,
    #[command(subcommand)]
    op: Op,
}

#[derive(Debug, Subcommand)]
enum Op {
    /// Print a key's value (exit 1 when it is not set).
    Get {
        /// The key.
        key: String,
    },
    /// Set a key; prints the config's new version.
    Set {
        /// The key.
        key: String,
        /// The value, an Erlang term (or any text with --text).
        value: String,
        /// Store VALUE as a UTF-8 binary, as it is.
        #[arg(long)]
        text: bool,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
    /// List keys, values and versions.
    List {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Print the keys under PREFIX, then every change as it happens, until interrupted.
    Watch {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
        /// Stop after this many changes.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
}

pub fn run(global: &GlobalOpts, args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let cookie = super::session::cookie(global)?;
    let holder = settings.beacon(args.beacon.clone());
    let value = match &args.op {
        Op::Set { value, text, .. } if *text => Some(binary(value.clone())),
        Op::Set { value, .. } => Some(cluster::dist::term::parse(value).map_err(|e| {
            Usage(format!(
                "the value is not an Erlang term ({e}); give --text to store it as text"
            ))
        })?),
        _ => None,
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    super::runtime()?.block_on(async {
        let node = super::session::hidden_node(&settings, cookie, &holder).await?;
        let client = ConfigClient::new(node.clone(), holder.clone());
        let code = tokio::time::timeout(
            if matches!(args.op, Op::Watch { .. }) {
                Duration::MAX
            } else {
                timeout
            },
            op(&node, &client, &args, value),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow!("no answer from {holder} in time")));
        node.shutdown().await;
        code.with_context(|| format!("config on {holder}"))
    })
}

async fn op(
    node: &cluster::dist::Node,
    client: &ConfigClient,
    args: &ConfigArgs,
    value: Option<Term>,
) -> anyhow::Result<ExitCode> {
    match &args.op {
        Op::Get { key } => match client.get(key).await {
            Ok(v) => {
                if args.json {
                    output::print_json(&to_json(&v))?;
                } else {
                    println!("{}", v.value);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(ConfigError::NotFound) => {
                if args.json {
                    output::print_json(&json!({"key": key, "found": false}))?;
                } else {
                    eprintln!("cluster: config key {key:?} is not set");
                }
                Ok(ExitCode::from(1))
            }
            Err(e) => Err(e.into()),
        },
        Op::Set { key, .. } => {
            let v = client.set(key, value.expect("parsed")).await?;
            if args.json {
                output::print_json(&json!({"version": v}))?;
            } else {
                println!("version {v}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Op::Delete { key } => match client.delete(key).await {
            Ok(v) => {
                if args.json {
                    output::print_json(&json!({"version": v}))?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(ConfigError::NotFound) => Err(anyhow!("config key {key:?} is not set")),
            Err(e) => Err(e.into()),
        },
        Op::List { prefix } => {
            let (_, values) = client.list(prefix).await?;
            show(&values, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Op::Watch { prefix, count } => {
            let mut mb = node.spawn_mailbox();
            let (_, values) = client.watch(&mb.pid(), prefix).await?;
            for v in &values {
                line(v, args.json)?;
            }
            let mut seen = 0u64;
            let holder_down = node.monitor_nodes();
            let mut events = holder_down;
            loop {
                if count.is_some_and(|c| seen >= c) {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::select! {
                    m = mb.recv() => {
                        let Some(m) = m else { return Ok(ExitCode::SUCCESS) };
                        if let Some((key, value, version)) = parse_push(&m) {
                            let v = Value { key, value: value.unwrap_or_else(|| cluster::dist::term::atom("deleted")), version };
                            line(&v, args.json)?;
                            seen += 1;
                        }
                    }
                    ev = events.recv() => {
                        if let Some(cluster::dist::NodeEvent::Down { node: n, .. }) = ev {
                            return Err(anyhow!("lost the connection to {n}"));
                        }
                        if ev.is_none() {
                            return Ok(ExitCode::SUCCESS);
                        }
                    }
                }
            }
        }
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    json!({"key": v.key, "value": v.value.to_string(), "version": v.version})
}

fn line(v: &Value, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        let text = serde_json::to_string(&to_json(v))?;
        println!("{text}");
    } else {
        println!("{} {} (version {})", v.key, v.value, v.version);
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(())
}

fn show(values: &[Value], json_out: bool) -> anyhow::Result<()> {
    if json_out {
        let v: Vec<_> = values.iter().map(to_json).collect();
        return Ok(output::print_json(&v)?);
    }
    let mut t = output::table(&["KEY", "VALUE", "VERSION"]);
    for v in values {
        t.add_row(vec![
            v.key.clone(),
            v.value.to_string(),
            v.version.to_string(),
        ]);
    }
    Ok(output::print_table(&t)?)
}
