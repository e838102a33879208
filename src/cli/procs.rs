//! `cluster procs`, `cluster procs create` and `cluster whereis`: the process registry
//! (`cluster_server`) from a shell. They call a node's `cluster_server` through its
//! gen_server contract, as Erlang or Elixir would; without `--via`, the beacon's.
//!
//! Ids are Erlang terms (`42`, `'<<"bob">>'`, `'{zone, 3}'`); types are atoms.
//! `whereis` exits 1 when the id is not registered.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{output, GlobalOpts, Usage};
use cluster::dist::term::Term;
use cluster::dist::NodeName;
use cluster::registry::{Client, Record, RegistryError, Selector};

/// Arguments of `cluster procs`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProcsArgs {
    /// Only this type.
    #[arg(long = "type", value_name = "TYPE")]
    ty: Option<String>,
    /// Only processes living on this node.
    #[arg(long, value_name = "NODE")]
    node: Option<NodeName>,
    #[command(flatten)]
    via: Via,
    #[command(subcommand)]
    op: Option<Op>,
}

/// Which node's `cluster_server` to ask, and how.
#[derive(Debug, Args)]
pub struct Via {
    /// The node whose cluster_server to ask [default: the beacon].
    #[arg(long, global = true, value_name = "NODE")]
    via: Option<NodeName>,
    /// The beacon [default: env CLUSTER_BEACON, then the roles file's].
    #[arg(long, global = true, env = "CLUSTER_BEACON", value_name = "NODE")]
    beacon: Option<NodeName>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, global = true, value_name = "SECS", default_value = "10", value_parser = super::parse_secs)]
    timeout: f64,
}

#[derive(Debug, Subcommand)]
enum Op {
    /// Create a process of TYPE for ID on a node picked by the selector (or get the one that
    /// exists).
    Create {
        /// The type (it must be hosted by some node's role, e.g. the built-in echo).
        #[arg(value_name = "TYPE")]
        ty: String,
        /// The id, an Erlang term.
        id: String,
        /// least_loaded, hash, random, or a node name.
        #[arg(long, default_value = "least_loaded")]
        selector: Selector,
    },
}

/// Arguments of `cluster whereis`.
#[derive(Debug, Args)]
pub struct WhereisArgs {
    /// The type.
    #[arg(value_name = "TYPE")]
    ty: String,
    /// The id, an Erlang term.
    id: String,
    #[command(flatten)]
    via: Via,
}

fn parse_id(text: &str) -> anyhow::Result<Term> {
    cluster::dist::term::parse(text)
        .map_err(|e| Usage(format!("the id {text:?} is not an Erlang term: {e}")).into())
}

fn check_type(ty: &str) -> anyhow::Result<()> {
    let ok = !ty.is_empty()
        && ty.len() <= 255
        && ty
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@');
    if ok {
        Ok(())
    } else {
        Err(Usage(format!(
            "the type {ty:?} is not a plain atom (letters, digits, _)"
        ))
        .into())
    }
}

async fn client(global: &GlobalOpts, via: &Via) -> anyhow::Result<(cluster::dist::Node, Client)> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let cookie = super::session::cookie(global)?;
    let target = via
        .via
        .clone()
        .unwrap_or_else(|| settings.beacon(via.beacon.clone()));
    let node = super::session::hidden_node(&settings, cookie, &target).await?;
    let client =
        Client::new(node.clone(), target).with_timeout(Duration::from_secs_f64(via.timeout));
    Ok((node, client))
}

pub fn run(global: &GlobalOpts, args: ProcsArgs) -> anyhow::Result<ExitCode> {
    if let Some(t) = &args.ty {
        check_type(t)?;
    }
    let create = match &args.op {
        Some(Op::Create { ty, id, selector }) => {
            check_type(ty)?;
            Some((ty.clone(), parse_id(id)?, selector.clone()))
        }
        None => None,
    };
    super::runtime()?.block_on(async {
        let (node, client) = client(global, &args.via).await?;
        let result = match create {
            Some((ty, id, selector)) => client
                .create_process(&ty, id, selector)
                .await
                .map(|r| vec![r])
                .map_err(|e| anyhow!("create_process failed: {}", explain(&e))),
            None => client
                .procs(args.ty.as_deref(), args.node.as_ref().map(NodeName::as_str))
                .await
                .context("cannot list the registry"),
        };
        node.shutdown().await;
        show(&result?, args.via.json)?;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn whereis(global: &GlobalOpts, args: WhereisArgs) -> anyhow::Result<ExitCode> {
    check_type(&args.ty)?;
    let id = parse_id(&args.id)?;
    super::runtime()?.block_on(async {
        let (node, client) = client(global, &args.via).await?;
        let found = client.get_process(&args.ty, id.clone()).await;
        node.shutdown().await;
        match found.context("get_process failed")? {
            Some(r) => {
                show(&[r], args.via.json)?;
                Ok(ExitCode::SUCCESS)
            }
            None => {
                if args.via.json {
                    output::print_json(
                        &json!({"type": args.ty, "id": id.to_string(), "found": false}),
                    )?;
                } else {
                    eprintln!("cluster: {{{}, {id}}} is not registered", args.ty);
                }
                Ok(ExitCode::from(1))
            }
        }
    })
}

fn show(records: &[Record], json_out: bool) -> anyhow::Result<()> {
    if json_out {
        let v: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "type": r.key.ty.as_str(),
                    "id": r.key.id.to_string(),
                    "node": r.node(),
                    "pid": format!("{}", Term::Pid(r.pid.clone())),
                    "meta": r.meta.to_string(),
                })
            })
            .collect();
        return Ok(output::print_json(&v)?);
    }
    let mut t = output::table(&["TYPE", "ID", "NODE", "PID", "META"]);
    for r in records {
        t.add_row(vec![
            r.key.ty.as_str().to_owned(),
            r.key.id.to_string(),
            r.node().to_owned(),
            Term::Pid(r.pid.clone()).to_string(),
            if r.meta.is_nil() {
                String::new()
            } else {
                r.meta.to_string()
            },
        ]);
    }
    Ok(output::print_table(&t)?)
}

/// Maps a refusal to the text an operator needs.
fn explain(e: &RegistryError) -> String {
    match e {
        RegistryError::Refused(why) if why.starts_with("{no_host,") => {
            format!("no node hosts that type ({why}): list it in a role's hosts in the roles file")
        }
        other => other.to_string(),
    }
}
