//! A full node (runtime, cluster, registry, remote) as its own OS process, for tests that kill a node for real.
//!
//! `remote-node <name> [seed ...]`: starts a node on an ephemeral port with the test cookie and the test
//! behaviours, prints `ready <node id>` on stdout, and runs until killed. With `NOEX_TEST_REPLICA=<name>:<n>`, it
//! also runs a replica of the named distributed supervision of `n` test counters placed round robin (the
//! fixtures' `spec`), as the in-process nodes of the test do, and says `ready` once the supervision it owns (if it
//! does) has started every child.

// A program owns its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

use noex_tests::remote::full_node;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("usage: remote-node <name> [seed ...]");
        return std::process::ExitCode::from(2);
    };
    let seeds: Vec<noex_cluster::NodeId> = match args.map(|seed| seed.parse()).collect() {
        Ok(seeds) => seeds,
        Err(error) => {
            eprintln!("bad seed: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let node = full_node(&name, &seeds.iter().collect::<Vec<_>>()).await;
    let _replica = match std::env::var("NOEX_TEST_REPLICA").ok().map(|value| replica_spec(&value)) {
        None => None,
        Some(Some(spec)) => match noex_dist_supervisor::DistSupervisor::start_replica(&node, spec).await {
            Ok(replica) => Some(replica),
            Err(error) => {
                eprintln!("replica: {error}");
                return std::process::ExitCode::from(1);
            }
        },
        Some(None) => {
            eprintln!("NOEX_TEST_REPLICA is <name>:<children>");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(replica) = &_replica {
        // Ready once the supervision it owns (its node sorts first in the tests) has started every child.
        let owned = tokio::time::timeout(std::time::Duration::from_secs(10), replica.owned()).await;
        if let Ok(Some(supervisor)) = owned {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while !supervisor.which_children().await.is_ok_and(|c| c.iter().all(|c| c.pid.is_some())) {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
            .await;
        }
    }
    println!("ready {}", node.id());
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
    std::process::ExitCode::SUCCESS
}

/// The supervision `<name>:<children>` names.
fn replica_spec(value: &str) -> Option<noex_dist_supervisor::DistSupervisorSpec> {
    let (name, children) = value.split_once(':')?;
    let children = noex_tests::dist::counters(children.parse().ok()?);
    let selector = noex_dist_supervisor::NodeSelector::RoundRobin;
    Some(noex_tests::dist::spec(noex_dist_supervisor::Strategy::OneForOne, selector, children).name(name))
}
