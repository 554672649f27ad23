//! The workspace obeys its layering rule, and the checker catches breaches.

use std::path::Path;

use noex_tests::layering::{Member, members, parse, violations};

#[test]
fn the_workspace_is_layered_strictly_upward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let all = members(root);
    assert!(all.iter().any(|m| m.name == "noex-core"), "found the members");
    let breaches = violations(&all);
    assert!(breaches.is_empty(), "layering breaches:\n{}", breaches.join("\n"));
}

#[test]
fn a_dependency_on_a_higher_layer_is_reported() {
    let core = parse("[package]\nname = \"noex-core\"\n[dependencies]\nnoex-cluster = { path = \"x\" }\n");
    assert_eq!(violations(&[core]), ["noex-core depends on noex-cluster, which is not below it"]);
}

#[test]
fn app_only_dependencies_and_unplaced_crates_are_reported() {
    let lib = Member { name: "noex-proto".into(), dependencies: vec!["clap".into(), "noex-mystery".into()] };
    let stray = Member { name: "noex-mystery".into(), dependencies: vec![] };
    assert_eq!(
        violations(&[lib, stray]),
        [
            "library noex-proto depends on clap, which only programs may use",
            "noex-proto depends on noex-mystery, which is in no layer",
            "noex-mystery is not placed in a layer (add it to LAYERS and docs/architecture.md)",
        ]
    );
}

#[test]
fn process_groups_and_the_registry_are_siblings() {
    // noex-pg sits beside noex-registry on noex-cluster: neither may use the other.
    let pg = parse("[package]\nname = \"noex-pg\"\n[dependencies]\nnoex-registry = { path = \"x\" }\n");
    assert_eq!(violations(&[pg]), ["noex-pg depends on noex-registry, which is not below it"]);
}
