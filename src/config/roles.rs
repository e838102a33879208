//! `roles.toml`: the cluster's roles, each with the resource it provides and the resources it
//! requires (seed 000's `{node, module, resource, [requirement]}`), plus cluster defaults.
//!
//! Loading is two-layered, as in ripgrep: the raw TOML is deserialised with spans kept, then
//! validated into a resolved [`RolesFile`]. Every error names the file, line and column, so an
//! operator can fix a typo without reading code, and nothing here panics on bad input.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::ConfigError;
use crate::data::routing::{Route, Routes};
use crate::dist::NodeName;

/// Default `net_ticktime`, in seconds, as Erlang.
pub const DEFAULT_NET_TICKTIME: u64 = 60;
/// Default beacon node.
pub const DEFAULT_BEACON: &str = "beacon1@127.0.0.1";

/// Which connections a node makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mesh {
    /// Connect to every online node, as Erlang's transitive connections do.
    #[default]
    Full,
    /// Connect only to the beacon and this node's providers; scales past a full mesh.
    Requirements,
}

/// Cluster-wide defaults from the `[cluster]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterDefaults {
    /// The beacon node, validated as a node name where the file gives it.
    pub beacon: NodeName,
    /// Tick time in seconds.
    pub net_ticktime: u64,
    /// Mesh mode.
    pub mesh: Mesh,
}

/// One declared role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    /// The role's name, used with `--role` and in node names (`<role>1@host`).
    pub name: String,
    /// The resource this role provides.
    pub resource: String,
    /// The resources this role needs providers for.
    pub requirements: Vec<String>,
    /// The module name reported to the beacon (seed 000's `Module`).
    pub module: String,
    /// Free text for listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The process types its nodes host for the registry's `create_process` (default: the
    /// built-in `echo`).
    pub hosts: Vec<String>,
}

/// What happens to a type's processes when their node dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Restart {
    /// They are deregistered, and that is all.
    #[default]
    Never,
    /// They are created again on the least-loaded other node that hosts the type.
    Elsewhere,
}

/// A process type declared in `[types.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessType {
    /// The type (an atom: `player`).
    pub name: String,
    /// Its restart policy.
    pub restart: Restart,
    /// Free text for listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A validated roles file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolesFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The `[cluster]` table.
    pub cluster: ClusterDefaults,
    /// Roles in file order.
    pub roles: Vec<Role>,
    /// The `[data]` table: the data tier's routing by bucket.
    pub data: DataConfig,
    /// The `[types]` table: process types of the registry (`echo` is always declared).
    pub types: Vec<ProcessType>,
}

/// The `[data]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DataConfig {
    /// Which data_contact owns which buckets (empty: one data_contact owns them all).
    pub routes: Routes,
    /// Whether the routes are meant to cover every first character between their lowest and
    /// highest (a gap is then an error).
    pub exhaustive: bool,
}

impl RolesFile {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<RolesFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        RolesFile::parse(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<RolesFile, ConfigError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_column(text, span.start);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim_end().to_owned(),
            }
        })?;

        let cluster = resolve_cluster(raw.cluster, &at)?;

        let mut raw_roles: Vec<(String, Spanned<RawRole>)> = raw.roles.into_iter().collect();
        raw_roles.sort_by_key(|(_, r)| r.span().start);
        if raw_roles.is_empty() {
            return Err(at(
                0..0,
                "no roles declared: add a [roles.<name>] table".into(),
            ));
        }

        let types = resolve_types(raw.types, &at)?;
        let mut roles = Vec::with_capacity(raw_roles.len());
        let mut provider_of: HashMap<String, usize> = HashMap::new();
        for (idx, (name, raw_role)) in raw_roles.iter().enumerate() {
            let role_span = raw_role.span();
            let raw_role = raw_role.get_ref();
            if let Err(why) = check_identifier(name) {
                return Err(at(role_span, format!("role name {name:?} {why}")));
            }
            let (resource, resource_span) = match &raw_role.resource {
                Some(r) => (r.get_ref().clone(), r.span()),
                None => (name.clone(), role_span.clone()),
            };
            if let Err(why) = check_identifier(&resource) {
                return Err(at(resource_span, format!("resource {resource:?} {why}")));
            }
            if let Some(&other) = provider_of.get(&resource) {
                return Err(at(
                    resource_span,
                    format!(
                        "duplicate resource {resource:?}: role {:?} provides it already",
                        raw_roles[other].0
                    ),
                ));
            }
            provider_of.insert(resource.clone(), idx);
            let mut hosts = Vec::new();
            match &raw_role.hosts {
                None => hosts.push(ECHO_TYPE.to_owned()),
                Some(list) => {
                    for h in list {
                        let h_name = h.get_ref();
                        if !types.iter().any(|t| &t.name == h_name) {
                            let known: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
                            return Err(at(
                                h.span(),
                                format!(
                                    "role {name:?} hosts undeclared type {h_name:?}; declare it \
                                     in [types.{h_name}] (declared: {})",
                                    known.join(", ")
                                ),
                            ));
                        }
                        if hosts.contains(h_name) {
                            return Err(at(
                                h.span(),
                                format!("duplicate type {h_name:?} in hosts of role {name:?}"),
                            ));
                        }
                        hosts.push(h_name.clone());
                    }
                }
            }
            let mut seen = HashSet::new();
            for req in &raw_role.requirements {
                if !seen.insert(req.get_ref().as_str()) {
                    return Err(at(
                        req.span(),
                        format!("duplicate requirement {:?} in role {name:?}", req.get_ref()),
                    ));
                }
            }
            roles.push(Role {
                name: name.clone(),
                resource,
                requirements: raw_role
                    .requirements
                    .iter()
                    .map(|r| r.get_ref().clone())
                    .collect(),
                module: raw_role.module.clone().unwrap_or_else(|| name.clone()),
                description: raw_role.description.clone(),
                hosts,
            });
        }

        // Every requirement must name a declared resource.
        for (name, raw_role) in &raw_roles {
            for req in &raw_role.get_ref().requirements {
                if !provider_of.contains_key(req.get_ref()) {
                    let mut known: Vec<&str> = roles.iter().map(|r| r.resource.as_str()).collect();
                    known.sort_unstable();
                    return Err(at(
                        req.span(),
                        format!(
                            "unknown requirement {:?} in role {name:?}; declared resources: {}",
                            req.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
            }
        }

        // Requirements must not form a cycle: a node would wait for itself forever.
        if let Some((role_idx, req_idx, cycle)) = find_cycle(&roles, &provider_of) {
            let span = raw_roles[role_idx].1.get_ref().requirements[req_idx].span();
            return Err(at(
                span,
                format!("requirement cycle: {}", cycle.join(" -> ")),
            ));
        }

        let data = resolve_data(raw.data, &at)?;

        Ok(RolesFile {
            path: path.to_owned(),
            cluster,
            roles,
            data,
            types,
        })
    }

    /// A declared process type.
    pub fn process_type(&self, name: &str) -> Option<&ProcessType> {
        self.types.iter().find(|t| t.name == name)
    }

    /// The types whose processes are created again elsewhere when their node dies.
    pub fn restart_elsewhere(&self) -> Vec<String> {
        self.types
            .iter()
            .filter(|t| t.restart == Restart::Elsewhere)
            .map(|t| t.name.clone())
            .collect()
    }

    /// Looks a role up by name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The declared role names, for error messages.
    pub fn role_names(&self) -> Vec<&str> {
        self.roles.iter().map(|r| r.name.as_str()).collect()
    }
}

/// The built-in process type every node hosts unless its role lists `hosts`.
pub const ECHO_TYPE: &str = "echo";

fn resolve_types(
    raw: BTreeMap<String, Spanned<RawType>>,
    at: &impl Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<Vec<ProcessType>, ConfigError> {
    let mut types = vec![ProcessType {
        name: ECHO_TYPE.to_owned(),
        restart: Restart::Never,
        description: Some("built in: answers any call with {echo, Request}".to_owned()),
    }];
    let mut raw: Vec<(String, Spanned<RawType>)> = raw.into_iter().collect();
    raw.sort_by_key(|(_, t)| t.span().start);
    for (name, t) in raw {
        if let Err(why) = check_identifier(&name) {
            return Err(at(t.span(), format!("type name {name:?} {why}")));
        }
        let t = t.into_inner();
        let decl = ProcessType {
            name: name.clone(),
            restart: t.restart.unwrap_or_default(),
            description: t.description,
        };
        match types.iter_mut().find(|x| x.name == name) {
            Some(echo) => {
                echo.restart = decl.restart;
                if decl.description.is_some() {
                    echo.description = decl.description;
                }
            }
            None => types.push(decl),
        }
    }
    Ok(types)
}

fn resolve_data(
    raw: Option<RawData>,
    at: &impl Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<DataConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(DataConfig::default());
    };
    let one_char = |s: &Spanned<String>, what: &str| -> Result<char, ConfigError> {
        let mut chars = s.get_ref().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(at(
                s.span(),
                format!(
                    "the {what} of a route must be one character (a bucket name's first), not {:?}",
                    s.get_ref()
                ),
            )),
        }
    };
    let mut routes = Vec::with_capacity(raw.routes.len());
    let mut spans = Vec::with_capacity(raw.routes.len());
    for r in &raw.routes {
        let [first, last, node] = &r.get_ref()[..] else {
            return Err(at(
                r.span(),
                format!(
                    "a route is [first, last, node], e.g. [\"a\", \"m\", \"data_contact1@host\"]; this one has {} items",
                    r.get_ref().len()
                ),
            ));
        };
        let node_name = NodeName::parse(node.get_ref())
            .map_err(|e| at(node.span(), format!("route node: {e}")))?;
        routes.push(Route {
            first: one_char(first, "start")?,
            last: one_char(last, "end")?,
            node: node_name,
        });
        spans.push(r.span());
    }
    let exhaustive = raw.exhaustive.unwrap_or(false);
    if let Err(p) = crate::data::routing::validate(&routes, exhaustive) {
        return Err(at(
            spans[p.index].clone(),
            format!("route {}: {}", p.index + 1, p.why),
        ));
    }
    Ok(DataConfig {
        routes: Routes { routes },
        exhaustive,
    })
}

fn resolve_cluster(
    raw: Option<RawCluster>,
    at: &impl Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<ClusterDefaults, ConfigError> {
    let raw = raw.unwrap_or_default();
    let beacon = match raw.beacon {
        Some(b) => {
            NodeName::parse(b.get_ref()).map_err(|e| at(b.span(), format!("beacon: {e}")))?
        }
        None => NodeName::parse(DEFAULT_BEACON).map_err(|e| at(0..0, e.to_string()))?,
    };
    let net_ticktime = match raw.net_ticktime {
        Some(t) => match u64::try_from(*t.get_ref()) {
            Ok(secs) if (1..=86_400).contains(&secs) => secs,
            _ => {
                return Err(at(
                    t.span(),
                    format!(
                        "net_ticktime {} must be between 1 and 86400 seconds",
                        t.get_ref()
                    ),
                ))
            }
        },
        None => DEFAULT_NET_TICKTIME,
    };
    Ok(ClusterDefaults {
        beacon,
        net_ticktime,
        mesh: raw.mesh.unwrap_or_default(),
    })
}

/// Role and resource names become atoms and parts of node names: keep them plain.
fn check_identifier(s: &str) -> Result<(), &'static str> {
    let mut chars = s.chars();
    match chars.next() {
        None => Err("is empty"),
        Some(c) if !c.is_ascii_lowercase() => Err("must start with a lowercase letter"),
        _ if s.len() > 64 => Err("is longer than 64 characters"),
        _ if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') => {
            Err("may contain only lowercase letters, digits and '_'")
        }
        _ => Ok(()),
    }
}

/// Finds a requirement cycle. Returns the role and requirement index that closes it, and the
/// cycle as role names.
fn find_cycle(
    roles: &[Role],
    provider_of: &HashMap<String, usize>,
) -> Option<(usize, usize, Vec<String>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; roles.len()];
    for start in 0..roles.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (role, next requirement index); the stack is the current path.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Active;
        while let Some(&mut (role, ref mut next)) = stack.last_mut() {
            let Some(req) = roles[role].requirements.get(*next) else {
                marks[role] = Mark::Done;
                stack.pop();
                continue;
            };
            let req_idx = *next;
            *next += 1;
            let Some(&provider) = provider_of.get(req) else {
                continue;
            };
            match marks[provider] {
                Mark::Active => {
                    let from = stack.iter().position(|&(r, _)| r == provider).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[from..]
                        .iter()
                        .map(|&(r, _)| roles[r].name.clone())
                        .collect();
                    cycle.push(roles[provider].name.clone());
                    return Some((role, req_idx, cycle));
                }
                Mark::New => {
                    marks[provider] = Mark::Active;
                    stack.push((provider, 0));
                }
                Mark::Done => {}
            }
        }
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    cluster: Option<RawCluster>,
    data: Option<RawData>,
    #[serde(default)]
    roles: BTreeMap<String, Spanned<RawRole>>,
    #[serde(default)]
    types: BTreeMap<String, Spanned<RawType>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    restart: Option<Restart>,
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    #[serde(default)]
    routes: Vec<Spanned<Vec<Spanned<String>>>>,
    exhaustive: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    beacon: Option<Spanned<String>>,
    net_ticktime: Option<Spanned<i64>>,
    mesh: Option<Mesh>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    resource: Option<Spanned<String>>,
    #[serde(default)]
    requirements: Vec<Spanned<String>>,
    module: Option<String>,
    description: Option<String>,
    hosts: Option<Vec<Spanned<String>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RolesFile, ConfigError> {
        RolesFile::parse(Path::new("roles.toml"), text)
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("must be rejected").to_string()
    }

    const GOOD: &str = r#"
[cluster]
beacon = "b1@10.0.0.1"
net_ticktime = 20
mesh = "requirements"

[roles.beacon]
[roles.gate_manager]
module = "Elixir.GateManager"
[roles.gate]
requirements = ["gate_manager"]
"#;

    #[test]
    fn valid_file_resolves_defaults_and_order() {
        let f = parse(GOOD).unwrap();
        assert_eq!(f.cluster.beacon.as_str(), "b1@10.0.0.1");
        assert_eq!(f.cluster.net_ticktime, 20);
        assert_eq!(f.cluster.mesh, Mesh::Requirements);
        let names: Vec<_> = f.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["beacon", "gate_manager", "gate"]);
        let gm = f.role("gate_manager").unwrap();
        assert_eq!(gm.resource, "gate_manager");
        assert_eq!(gm.module, "Elixir.GateManager");
        assert_eq!(f.role("gate").unwrap().requirements, ["gate_manager"]);
    }

    #[test]
    fn cluster_table_is_optional() {
        let f = parse("[roles.a]\n").unwrap();
        assert_eq!(f.cluster.beacon.as_str(), DEFAULT_BEACON);
        assert_eq!(f.cluster.net_ticktime, DEFAULT_NET_TICKTIME);
        assert_eq!(f.cluster.mesh, Mesh::Full);
    }

    #[test]
    fn unknown_requirement_names_line_and_column() {
        let e = error("[roles.gate]\nrequirements = [\"gate_mgr\"]\n");
        assert!(
            e.starts_with("roles.toml:2:17: unknown requirement \"gate_mgr\""),
            "{e}"
        );
        assert!(e.contains("declared resources: gate"), "{e}");
    }

    #[test]
    fn cycles_are_reported_with_their_path() {
        let e = error(
            "[roles.a]\nrequirements = [\"b\"]\n[roles.b]\nrequirements = [\"c\"]\n[roles.c]\nrequirements = [\"a\"]\n",
        );
        assert!(e.contains("requirement cycle: a -> b -> c -> a"), "{e}");
        assert!(e.starts_with("roles.toml:6:17:"), "{e}");
        let e = error("[roles.a]\nrequirements = [\"a\"]\n");
        assert!(e.contains("requirement cycle: a -> a"), "{e}");
    }

    #[test]
    fn duplicates_are_rejected() {
        let e = error("[roles.a]\n[roles.a]\n");
        assert!(e.starts_with("roles.toml:2:"), "{e}");
        assert!(e.to_lowercase().contains("duplicate"), "{e}");
        let e = error("[roles.a]\n[roles.b]\nresource = \"a\"\n");
        assert!(
            e.starts_with("roles.toml:3:12: duplicate resource \"a\""),
            "{e}"
        );
        let e = error("[roles.a]\n[roles.b]\nrequirements = [\"a\", \"a\"]\n");
        assert!(
            e.starts_with("roles.toml:3:22: duplicate requirement"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_types_are_located() {
        let e = error("[roles.a]\nresorce = \"x\"\n");
        assert!(e.starts_with("roles.toml:2:1:"), "{e}");
        assert!(e.contains("resorce"), "{e}");
        let e = error("[cluster]\nnet_ticktime = \"soon\"\n[roles.a]\n");
        assert!(e.starts_with("roles.toml:2:16:"), "{e}");
        let e = error("[cluster]\nmesh = \"star\"\n[roles.a]\n");
        assert!(e.starts_with("roles.toml:2:8:"), "{e}");
        let e = error("[cluster]\nnet_ticktime = 0\n[roles.a]\n");
        assert!(e.contains("between 1 and 86400"), "{e}");
        let e = error("[cluster]\nbeacon = \"nohost\"\n[roles.a]\n");
        assert!(
            e.starts_with("roles.toml:2:10:") && e.contains("name@host"),
            "{e}"
        );
        let e = error("[roles.Gate]\n");
        assert!(e.contains("must start with a lowercase letter"), "{e}");
        let e = error("oops = [\n");
        assert!(e.starts_with("roles.toml:"), "{e}");
        let e = error("");
        assert!(e.contains("no roles declared"), "{e}");
    }

    #[test]
    fn repo_roles_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("roles.toml");
        let f = RolesFile::load(&path).unwrap();
        assert_eq!(
            f.role_names(),
            [
                "beacon",
                "gate_manager",
                "gate",
                "data_contact",
                "data_service"
            ]
        );
        assert_eq!(f.role("gate").unwrap().requirements, ["gate_manager"]);
        assert_eq!(
            f.role("data_service").unwrap().requirements,
            ["data_contact"]
        );
        assert_eq!(f.cluster.beacon.as_str(), "beacon1@127.0.0.1");
        assert_eq!(f.cluster.net_ticktime, 60);
        assert_eq!(f.cluster.mesh, Mesh::Full);
    }

    #[test]
    fn data_routes_resolve_and_their_faults_are_located() {
        let base =
            "[roles.data_contact]\n[roles.data_service]\nrequirements = [\"data_contact\"]\n";
        let f = parse(&format!(
            "{base}[data]\nroutes = [[\"a\", \"m\", \"c1@h\"], [\"n\", \"z\", \"c2@h\"]]\nexhaustive = true\n"
        ))
        .unwrap();
        assert_eq!(f.data.routes.routes.len(), 2);
        assert_eq!(f.data.routes.routes[1].node.as_str(), "c2@h");
        assert!(f.data.exhaustive);
        assert!(parse(base).unwrap().data.routes.is_empty());

        let e = error(&format!(
            "{base}[data]\nroutes = [[\"a\", \"m\", \"c1@h\"],\n  [\"k\", \"z\", \"c2@h\"]]\n"
        ));
        assert!(e.starts_with("roles.toml:6:3:"), "{e}");
        assert!(
            e.contains("route 2: the range 'k'..'z' overlaps route 1"),
            "{e}"
        );
        let e = error(&format!(
            "{base}[data]\nexhaustive = true\nroutes = [[\"a\", \"l\", \"c1@h\"], [\"n\", \"z\", \"c2@h\"]]\n"
        ));
        assert!(e.contains("nothing covers 'm'..'m'"), "{e}");
        let e = error(&format!(
            "{base}[data]\nroutes = [[\"ab\", \"m\", \"c1@h\"]]\n"
        ));
        assert!(e.starts_with("roles.toml:5:12:"), "{e}");
        assert!(e.contains("must be one character"), "{e}");
        let e = error(&format!(
            "{base}[data]\nroutes = [[\"a\", \"m\", \"nohost\"]]\n"
        ));
        assert!(e.contains("route node:"), "{e}");
        let e = error(&format!("{base}[data]\nroutes = [[\"a\", \"m\"]]\n"));
        assert!(e.contains("this one has 2 items"), "{e}");
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\nçd", 5), (2, 2));
        assert_eq!(line_column("", 10), (1, 1));
    }

    #[test]
    fn types_and_hosts() {
        let f = parse(
            "[types.player]\nrestart = \"elsewhere\"\n[types.echo]\nrestart = \"elsewhere\"\n\
             [roles.game]\nhosts = [\"player\", \"echo\"]\n[roles.web]\n[roles.none]\nhosts = []\n",
        )
        .unwrap();
        assert_eq!(f.role("game").unwrap().hosts, ["player", "echo"]);
        assert_eq!(f.role("web").unwrap().hosts, ["echo"], "echo by default");
        assert!(f.role("none").unwrap().hosts.is_empty());
        assert_eq!(f.restart_elsewhere(), ["echo", "player"]);
        assert_eq!(
            f.process_type("player").unwrap().restart,
            Restart::Elsewhere
        );
        let e = parse("[roles.game]\nhosts = [\"npc\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("undeclared type \"npc\"") && e.contains(":2:"),
            "{e}"
        );
        let e = parse("[types.npc]\nrestart = \"sometimes\"\n[roles.a]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sometimes"), "{e}");
        let e = parse("[types.npc]\n[roles.a]\nhosts = [\"npc\", \"npc\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate type"), "{e}");
    }
}
