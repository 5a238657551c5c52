//! lab/primaryd.clab.yml stays a valid containerlab topology: it is checked against
//! containerlab's own JSON Schema (../shared/containerlab/clab.schema.json), so the same file
//! deploys with `containerlab deploy` where Docker runs.

use std::path::PathBuf;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn topology() -> serde_json::Value {
    let path = manifest().join("../primaryd.clab.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
}

fn schema() -> serde_json::Value {
    let path = manifest().join("../../../shared/containerlab/clab.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the schema lives in shared/ beside the repository)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("schema is JSON")
}

fn errors(instance: &serde_json::Value) -> Vec<String> {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("containerlab's schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn lab_topology_is_valid_containerlab() {
    let errs = errors(&topology());
    assert!(errs.is_empty(), "lab/primaryd.clab.yml: {errs:#?}");
}

#[test]
fn the_schema_check_catches_a_broken_topology() {
    // The check is real: a misspelt node key and a wrong kind are rejected.
    let mut t = topology();
    t["topology"]["nodes"]["db1"]["binds_"] = serde_json::json!(["x:/y"]);
    t["topology"]["nodes"]["db2"]["kind"] = serde_json::json!("not-a-kind");
    let errs = errors(&t);
    assert!(errs.len() >= 2, "{errs:#?}");
}

#[test]
fn topology_follows_the_address_plan() {
    // Only documentation and benchmarking ranges (and the service) appear in addresses.
    let t = topology();
    let nodes = t["topology"]["nodes"].as_object().unwrap();
    let mut names: Vec<&String> = nodes.keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["app1", "db1", "db2", "db3", "spine1", "tor1", "tor2"]
    );
    let (mut v4, mut v6) = (0, 0);
    for (name, n) in nodes {
        for line in n["exec"].as_array().into_iter().flatten() {
            let line = line.as_str().unwrap();
            for word in line.split_whitespace() {
                let addr = word.split('/').next().unwrap();
                if addr.parse::<std::net::Ipv4Addr>().is_ok() {
                    assert!(
                        addr.starts_with("198.18.")
                            || addr.starts_with("198.19.0.")
                            || addr == "192.0.2.10",
                        "{name}: {line}: {addr} is outside the lab's ranges"
                    );
                    v4 += 1;
                }
                if let Ok(a) = addr.parse::<std::net::Ipv6Addr>() {
                    // Links in 2001:db8:18::/48, the service 2001:db8::10.
                    let s = a.segments();
                    assert!(
                        s[..3] == [0x2001, 0xdb8, 0x18]
                            || a == std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10),
                        "{name}: {line}: {addr} is outside the lab's ranges"
                    );
                    v6 += 1;
                }
            }
        }
    }
    // Dual stack: every IPv4 link address has its IPv6 twin (the loopbacks are IPv4 only),
    // and the service has its /128 on each DB host.
    assert!(v4 > 0 && v6 > 0, "{v4} IPv4 and {v6} IPv6 addresses");
}
