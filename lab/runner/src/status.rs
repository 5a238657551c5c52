//! `status`: what runs in each node of the lab, the routers' sessions and routes, the DB
//! servers' replication (rendered by `lab::print_status`).

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::Value;

use crate::lab::Lab;
use crate::sql;
use crate::topo::Role;
use crate::util;

impl Lab {
    pub fn status(&self) -> Result<Value> {
        let present = util::netns_list();
        let prefixes = self.service_prefixes();
        let mut nodes = Vec::new();
        for n in &self.topo.nodes {
            let ns = self.netns(&n.name);
            let mut o = serde_json::Map::new();
            o.insert("node".into(), n.name.clone().into());
            o.insert("role".into(), serde_json::to_value(n.role)?);
            let up = present.contains(&ns);
            o.insert(
                "netns".into(),
                if up { ns.clone().into() } else { Value::Null },
            );
            if up {
                let mut procs: Vec<String> =
                    util::netns_pids(&ns).into_iter().map(util::comm).collect();
                procs.sort();
                procs.dedup();
                o.insert("processes".into(), procs.into());
                match n.role {
                    Role::Frr | Role::Bird => {
                        let s: BTreeMap<String, String> = self
                            .bgp_sessions(&n.name)
                            .unwrap_or_default()
                            .into_iter()
                            .collect();
                        o.insert("bgp".into(), serde_json::to_value(s)?);
                        let routes: serde_json::Map<String, Value> = prefixes
                            .iter()
                            .map(|p| {
                                (
                                    p.clone(),
                                    self.service_route(&n.name, p).map(|(_, l)| l).into(),
                                )
                            })
                            .collect();
                        o.insert("routes".into(), routes.into());
                    }
                    Role::Db => {
                        if let Ok(v) = sql::db_state(self, &n.name) {
                            o.insert("db".into(), serde_json::to_value(v)?);
                        }
                    }
                    Role::App => {}
                }
            }
            nodes.push(Value::Object(o));
        }
        Ok(serde_json::json!({
            "lab": self.id,
            "topology": self.topo.name,
            "file": self.topo.file,
            "dir": self.dir,
            "phase": self.state().map(|s| s.phase),
            "nodes": nodes,
        }))
    }
}
