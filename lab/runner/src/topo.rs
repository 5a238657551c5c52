//! The containerlab topology file, as far as the namespace runner uses it: nodes of kind
//! `linux` with `binds`, `env`, `exec`, `cmd`, `sysctls` and `labels`, and veth links given as
//! two `node:interface` endpoints. Everything else containerlab knows is ignored here (the file
//! stays a valid containerlab topology; a test validates it against containerlab's schema).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The label that says what a node is to the runner: `frr`, `bird`, `db` or `app`.
pub const ROLE_LABEL: &str = "primaryd-lab.role";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Frr,
    Bird,
    Db,
    App,
}

impl Role {
    pub fn is_router(self) -> bool {
        matches!(self, Role::Frr | Role::Bird)
    }
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub name: String,
    pub file: PathBuf,
    /// In file order (a BTreeMap would sort db1 before spine1; the order is cosmetic only).
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub role: Role,
    pub binds: Vec<Bind>,
    pub env: BTreeMap<String, String>,
    pub exec: Vec<String>,
    pub cmd: Option<String>,
    pub sysctls: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Bind {
    /// Absolute path on this machine (relative binds are relative to the topology file).
    pub source: PathBuf,
    /// Path inside the node.
    pub target: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub node: String,
    pub iface: String,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub a: Endpoint,
    pub b: Endpoint,
}

// ---------- raw ----------

#[derive(Deserialize)]
struct RawFile {
    name: String,
    topology: RawTopology,
}

#[derive(Deserialize)]
struct RawTopology {
    #[serde(default)]
    nodes: serde_norway::Mapping,
    #[serde(default)]
    links: Vec<RawLink>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawNode {
    kind: Option<String>,
    #[serde(default)]
    binds: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    exec: Vec<String>,
    cmd: Option<String>,
    #[serde(default)]
    sysctls: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    labels: BTreeMap<String, serde_norway::Value>,
}

#[derive(Deserialize)]
struct RawLink {
    endpoints: Vec<String>,
}

fn scalar(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Only these trees may receive binds: inside a node they are private (a tmpfs, an overlay of
/// /etc or a per-node folder), so a bind never creates a file on the machine itself.
pub const PRIVATE_ROOTS: &[&str] = &[
    "/etc",
    "/run",
    "/var/log",
    "/var/lib",
    "/usr/local/bin",
    "/usr/local/sbin",
];

pub fn load(file: &Path) -> Result<Topology> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let raw: RawFile = serde_norway::from_str(&text)
        .with_context(|| format!("{}: not a containerlab topology", file.display()))?;
    let file = std::fs::canonicalize(file)?;
    let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut nodes = Vec::new();
    for (name, value) in raw.topology.nodes {
        let name = scalar(&name).context("a node name is not a string")?;
        let where_ = format!("{}: node {name}", file.display());
        nodes.push(node(name, value, &dir, &where_)?);
    }
    let links = links(raw.topology.links, &nodes)?;
    Ok(Topology {
        name: raw.name,
        file,
        nodes,
        links,
    })
}

/// A node of the topology, checked; `where_` names it in errors.
fn node(name: String, value: serde_norway::Value, dir: &Path, where_: &str) -> Result<Node> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{where_}: names must be letters, digits, '-' and '_'");
    }
    let raw: RawNode = if value.is_null() {
        RawNode::default()
    } else {
        serde_norway::from_value(value).with_context(|| where_.to_string())?
    };
    if raw.kind.as_deref() != Some("linux") {
        bail!("{where_}: the namespace runner builds nodes of kind linux only");
    }
    let role = match raw.labels.get(ROLE_LABEL).and_then(scalar).as_deref() {
        Some("frr") => Role::Frr,
        Some("bird") => Role::Bird,
        Some("db") => Role::Db,
        Some("app") => Role::App,
        other => {
            bail!("{where_}: label {ROLE_LABEL} must be frr, bird, db or app, not {other:?}")
        }
    };
    let binds = raw
        .binds
        .iter()
        .map(|b| bind(b, dir, where_))
        .collect::<Result<Vec<_>>>()?;
    let strings = |m: &BTreeMap<String, serde_norway::Value>, what: &str| {
        m.iter()
            .map(|(k, v)| {
                scalar(v)
                    .map(|v| (k.clone(), v))
                    .with_context(|| format!("{where_}: {what} {k} is not a scalar"))
            })
            .collect::<Result<BTreeMap<_, _>>>()
    };
    Ok(Node {
        role,
        binds,
        env: strings(&raw.env, "env")?,
        sysctls: strings(&raw.sysctls, "sysctl")?,
        exec: raw.exec,
        cmd: raw.cmd,
        name,
    })
}

/// A node's `SOURCE:TARGET[:ro]` bind: the source exists (relative to the topology's folder),
/// the target lies below one of PRIVATE_ROOTS.
fn bind(b: &str, dir: &Path, where_: &str) -> Result<Bind> {
    let parts: Vec<&str> = b.split(':').collect();
    let (src, dst, ro) = match parts.as_slice() {
        [s, d] => (*s, *d, false),
        [s, d, "ro"] => (*s, *d, true),
        [s, d, "rw"] => (*s, *d, false),
        _ => bail!("{where_}: bind {b:?} is not SOURCE:TARGET[:ro]"),
    };
    let source = if Path::new(src).is_absolute() {
        PathBuf::from(src)
    } else {
        dir.join(src)
    };
    if !source.exists() {
        bail!("{where_}: bind source {} does not exist", source.display());
    }
    let target = PathBuf::from(dst);
    if !target.is_absolute()
        || !PRIVATE_ROOTS
            .iter()
            .any(|r| target.starts_with(r) && target != Path::new(r))
    {
        bail!(
            "{where_}: bind target {dst} must be below one of {} (private to the node)",
            PRIVATE_ROOTS.join(", ")
        );
    }
    Ok(Bind {
        source,
        target,
        read_only: ro,
    })
}

/// The links between `nodes`, each of two endpoints; no interface in two links.
fn links(raw: Vec<RawLink>, nodes: &[Node]) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    for l in raw {
        let eps: Vec<Endpoint> = l
            .endpoints
            .iter()
            .map(|e| endpoint(e, nodes))
            .collect::<Result<_>>()?;
        let [a, b]: [Endpoint; 2] = eps
            .try_into()
            .map_err(|_| anyhow::anyhow!("a link needs exactly two endpoints"))?;
        links.push(Link { a, b });
    }
    let mut seen = std::collections::HashSet::new();
    for l in &links {
        for e in [&l.a, &l.b] {
            if !seen.insert((e.node.clone(), e.iface.clone())) {
                bail!("{}:{} is used by two links", e.node, e.iface);
            }
        }
    }
    Ok(links)
}

fn endpoint(e: &str, nodes: &[Node]) -> Result<Endpoint> {
    let (node, iface) = e
        .split_once(':')
        .with_context(|| format!("link endpoint {e:?} is not node:interface"))?;
    if !nodes.iter().any(|n| n.name == node) {
        bail!("link endpoint {e:?}: no node {node}");
    }
    if iface.is_empty() || iface.len() > 15 || iface == "lo" {
        bail!("link endpoint {e:?}: interface names are 1..=15 characters, not lo");
    }
    Ok(Endpoint {
        node: node.to_string(),
        iface: iface.to_string(),
    })
}

impl Topology {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.role == role)
    }

    /// The node at the other end of `node`'s interface `iface`.
    pub fn peer_of(&self, node: &str, iface: &str) -> Option<&Endpoint> {
        self.links.iter().find_map(|l| {
            if l.a.node == node && l.a.iface == iface {
                Some(&l.b)
            } else if l.b.node == node && l.b.iface == iface {
                Some(&l.a)
            } else {
                None
            }
        })
    }

    /// The interfaces of `node` that links use (its uplinks, for a host).
    pub fn ifaces_of(&self, node: &str) -> Vec<String> {
        let mut v = Vec::new();
        for l in &self.links {
            for e in [&l.a, &l.b] {
                if e.node == node {
                    v.push(e.iface.clone());
                }
            }
        }
        v
    }
}
