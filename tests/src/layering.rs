//! The layering rule of `docs/architecture.md`, checked against the members' `Cargo.toml` files.
//!
//! Crates compose strictly upward: a crate may depend only on crates of a lower layer. Only programs (apps, the
//! benchmark, the tests crate) may use the app-only dependencies.

use std::path::{Path, PathBuf};

/// Our crates, bottom to top. A crate may depend only on crates with a lower rank.
pub const LAYERS: &[(&str, u8)] = &[
    ("noex-core", 0),
    ("noex-proto", 1),
    ("noex-cluster", 2),
    ("noex-registry", 3),
    ("noex-pg", 3),
    ("noex-remote", 4),
    ("noex-observer", 5),
    ("noex-dist-supervisor", 6),
    ("counter-node", 7),
    ("observer-node", 7),
    ("noex-bench", 7),
    ("noex-chaos", 7),
    ("noex-fuzz", 7),
    ("noex-tests", 8),
];

/// The rank from which a crate is a program rather than a library.
const PROGRAMS: u8 = 7;

/// Dependencies reserved to programs.
pub const APP_ONLY: &[&str] = &["clap", "rustyline", "tracing-subscriber", "anyhow"];

/// One member's name and the names of everything it depends on (normal, dev and build).
#[derive(Debug, Clone)]
pub struct Member {
    /// The package name.
    pub name: String,
    /// Its dependencies' names.
    pub dependencies: Vec<String>,
}

/// Reads every workspace member under `root` (`crates/*`, `apps/*`, `tests`).
pub fn members(root: &Path) -> Vec<Member> {
    let mut manifests: Vec<PathBuf> = vec![root.join("tests/Cargo.toml")];
    for folder in ["crates", "apps"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else { continue };
        for entry in entries.flatten() {
            let manifest = entry.path().join("Cargo.toml");
            if manifest.exists() {
                manifests.push(manifest);
            }
        }
    }
    manifests.iter().map(|path| parse(&std::fs::read_to_string(path).expect("readable manifest"))).collect()
}

/// Parses one manifest.
pub fn parse(manifest: &str) -> Member {
    let table: toml::Table = manifest.parse().expect("valid TOML");
    let name = table["package"]["name"].as_str().expect("package name").to_owned();
    let mut dependencies = Vec::new();
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(deps) = table.get(section).and_then(|d| d.as_table()) {
            dependencies.extend(deps.keys().cloned());
        }
    }
    Member { name, dependencies }
}

/// Every breach of the rule, as readable sentences; empty when the workspace is well layered.
pub fn violations(members: &[Member]) -> Vec<String> {
    let rank = |name: &str| LAYERS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
    let mut found = Vec::new();
    for member in members {
        let Some(own) = rank(&member.name) else {
            found.push(format!("{} is not placed in a layer (add it to LAYERS and docs/architecture.md)", member.name));
            continue;
        };
        for dep in &member.dependencies {
            if dep.starts_with("noex-") || LAYERS.iter().any(|(n, _)| n == dep) {
                match rank(dep) {
                    Some(theirs) if theirs < own => {}
                    Some(_) => found.push(format!("{} depends on {dep}, which is not below it", member.name)),
                    None => found.push(format!("{} depends on {dep}, which is in no layer", member.name)),
                }
            }
            if own < PROGRAMS && APP_ONLY.contains(&dep.as_str()) {
                found.push(format!("library {} depends on {dep}, which only programs may use", member.name));
            }
        }
    }
    found
}
