//! Process groups across in-process nodes: memberships seen everywhere (repeats kept), removed when their process
//! ends or their node is lost (with one notification each), converging after a partition and after joins that
//! race connections, and no node able to change another's members.

use std::collections::HashSet;
use std::time::Instant;

use noex_core::{NodeName, Pid};
use noex_pg::{GroupEvent, GroupsError, ProcessGroups};
use noex_proto::{Frame, GroupPids, GroupsSync};
use noex_tests::cluster::wait_connected;
use noex_tests::groups::{events_until, member, next_event, union_of_locals, view};
use noex_tests::remote::{eventually, full_node, full_node_behind_proxy, mesh};

fn scopes(nodes: &[noex_remote::Node]) -> Vec<ProcessGroups> {
    nodes.iter().map(|node| node.groups().clone()).collect()
}

/// Waits until every one of `scopes` sees exactly what their nodes hold locally, together.
async fn converged(scopes: &[ProcessGroups]) {
    let what = "every node sees the union of the local memberships";
    eventually(what, || scopes.iter().all(|groups| view(groups) == union_of_locals(scopes))).await;
}

fn join(group: &str, pids: &[&Pid]) -> GroupEvent {
    GroupEvent::Join { group: group.into(), pids: pids.iter().map(|pid| (*pid).clone()).collect() }
}

fn leave(group: &str, pids: &[&Pid]) -> GroupEvent {
    GroupEvent::Leave { group: group.into(), pids: pids.iter().map(|pid| (*pid).clone()).collect() }
}

fn is_join_of(group: &'static str) -> impl Fn(&GroupEvent) -> bool {
    move |event| matches!(event, GroupEvent::Join { group: g, .. } if g == group)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_and_leave_across_three_nodes_with_repeats() {
    let nodes = mesh(3).await;
    let groups = scopes(&nodes);
    let p = member(&nodes[0]).await;
    let q = member(&nodes[1]).await;
    groups[0].join("g", &p).unwrap();
    groups[0].join("g", &p).unwrap();
    groups[1].join_many("g", std::slice::from_ref(&q)).unwrap();
    groups[1].join("h", &q).unwrap();
    converged(&groups).await;

    let mut expected = vec![p.clone(), p.clone(), q.clone()];
    expected.sort();
    assert_eq!(view(&groups[2])["g"], expected, "a pid that joined twice is listed twice");
    assert_eq!(groups[2].which_groups(), ["g", "h"]);
    assert!(groups[2].which_local_groups().is_empty() && groups[2].local_members("g").is_empty());
    assert_eq!(groups[0].local_members("g"), [p.clone(), p.clone()]);
    assert_eq!(groups[0].which_local_groups(), ["g"]);
    assert_eq!(groups[1].which_local_groups(), ["g", "h"]);

    groups[0].leave("g", &p).unwrap();
    eventually("one of p's two memberships is gone everywhere", || {
        groups.iter().all(|groups| groups.members("g").iter().filter(|pid| **pid == p).count() == 1)
    })
    .await;
    groups[1].leave("h", &q).unwrap();
    converged(&groups).await;
    assert_eq!(groups[2].which_groups(), ["g"], "a group goes with its last member");

    assert_eq!(groups[0].join("g", &q), Err(GroupsError::NotLocal(q.clone())), "only local processes join");
    assert_eq!(groups[0].leave("g", &q), Err(GroupsError::NotLocal(q.clone())));
    assert_eq!(groups[1].leave("h", &q), Err(GroupsError::NotJoined { group: "h".into() }));
    assert!(matches!(groups[0].join("", &p), Err(GroupsError::BadName { what: "group", .. })));
    let dead = member(&nodes[0]).await;
    nodes[0].runtime().kill(&dead);
    eventually("the process is gone", || !nodes[0].runtime().is_alive(&dead)).await;
    assert_eq!(groups[0].join("g", &dead), Err(GroupsError::NoProc(dead)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_exits_is_removed_everywhere_with_one_leave_per_subscription() {
    let nodes = mesh(3).await;
    let groups = scopes(&nodes);
    let p = member(&nodes[0]).await;
    let marker = member(&nodes[0]).await;
    groups[0].join_many("g", &[p.clone(), p.clone()]).unwrap();
    groups[0].join("h", &p).unwrap();
    converged(&groups).await;
    let mut subscriptions = Vec::new();
    for groups in &groups {
        let (now, subscription) = groups.monitor_scope();
        assert_eq!(now.len(), 2, "the subscription starts from the current membership");
        subscriptions.push(subscription);
    }
    let (members, mut on_g) = groups[2].monitor("g");
    assert_eq!(members, [p.clone(), p.clone()]);

    nodes[0].runtime().kill(&p);
    eventually("p is gone on its node", || groups[0].which_local_groups().is_empty()).await;
    // Announced after p's leaves on every connection: whatever p's end caused arrives before it.
    groups[0].join("g", &marker).unwrap();
    for subscription in &mut subscriptions {
        let events = events_until(subscription, is_join_of("g")).await;
        let seen: HashSet<String> = events.iter().map(|event| format!("{event:?}")).collect();
        let wanted: HashSet<String> = [leave("g", &[&p, &p]), leave("h", &[&p]), join("g", &[&marker])]
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        assert_eq!((events.len(), seen), (3, wanted), "one leave per group, then the marker");
    }
    assert_eq!(next_event(&mut on_g).await, leave("g", &[&p, &p]), "a group's monitor sees only its group");
    assert_eq!(next_event(&mut on_g).await, join("g", &[&marker]));
    converged(&groups).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_takes_its_members_with_it_everywhere() {
    let nodes = mesh(3).await;
    let groups = scopes(&nodes);
    let (p, q, r) = (member(&nodes[0]).await, member(&nodes[1]).await, member(&nodes[1]).await);
    groups[0].join("g", &p).unwrap();
    groups[1].join_many("g", &[q.clone(), r.clone()]).unwrap();
    groups[1].join("only-on-1", &q).unwrap();
    converged(&groups).await;
    let (_, mut on_0) = groups[0].monitor_scope();
    let (_, mut on_2) = groups[2].monitor("g");

    nodes[1].crash().await;
    let mut seen = vec![next_event(&mut on_0).await, next_event(&mut on_0).await];
    seen.sort_by_key(|event| format!("{event:?}"));
    assert_eq!(seen, [leave("g", &[&q, &r]), leave("only-on-1", &[&q])]);
    assert_eq!(next_event(&mut on_2).await, leave("g", &[&q, &r]));
    let survivors = [groups[0].clone(), groups[2].clone()];
    converged(&survivors).await;
    assert_eq!(groups[2].members("g"), std::slice::from_ref(&p));

    // Nothing more about the lost node: the next event is the next change.
    let s = member(&nodes[2]).await;
    groups[2].join("g", &s).unwrap();
    assert_eq!(next_event(&mut on_0).await, join("g", &[&s]));
    assert_eq!(next_event(&mut on_2).await, join("g", &[&s]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_of_a_healed_partition_converge_and_are_told_what_changed() {
    let (b, b_proxy) = full_node_behind_proxy("b", &[]).await;
    let (a, a_proxy) = full_node_behind_proxy("a", &[b.id()]).await;
    wait_connected(a.cluster(), 1).await;
    let groups = [a.groups().clone(), b.groups().clone()];
    let (a1, b1, b2) = (member(&a).await, member(&b).await, member(&b).await);
    groups[0].join("g", &a1).unwrap();
    groups[1].join("g", &b1).unwrap();
    groups[1].join("h", &b2).unwrap();
    converged(&groups).await;
    let (_, mut on_a) = groups[0].monitor_scope();

    a_proxy.pause();
    b_proxy.pause();
    wait_connected(a.cluster(), 0).await;
    wait_connected(b.cluster(), 0).await;
    let mut lost = vec![next_event(&mut on_a).await, next_event(&mut on_a).await];
    lost.sort_by_key(|event| format!("{event:?}"));
    assert_eq!(lost, [leave("g", &[&b1]), leave("h", &[&b2])], "b's members left with b");
    assert_eq!(view(&groups[0]), union_of_locals(&groups[..1]));

    // Both sides change while apart.
    let (a2, b3) = (member(&a).await, member(&b).await);
    groups[0].join("g", &a2).unwrap();
    groups[1].leave("g", &b1).unwrap();
    groups[1].join("g", &b3).unwrap();
    assert_eq!(next_event(&mut on_a).await, join("g", &[&a2]));

    let healing = Instant::now();
    a_proxy.resume();
    b_proxy.resume();
    converged(&groups).await;
    let took = healing.elapsed();
    let mut healed = vec![next_event(&mut on_a).await, next_event(&mut on_a).await];
    healed.sort_by_key(|event| format!("{event:?}"));
    assert_eq!(healed, [join("g", &[&b3]), join("h", &[&b2])], "a hears what b holds now, not what b did");
    assert_eq!(on_a.try_next(), None, "and nothing else");
    report_heal_time(took);
}

/// Where the time after a heal goes is mostly the cluster's redial backoff; kept visible with `--nocapture`.
fn report_heal_time(took: std::time::Duration) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("groups converged {took:?} after the partition healed (including the redial backoff)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_racing_connections_converge_to_the_union_of_local_memberships() {
    let a = full_node("a", &[]).await;
    let b = full_node("b", &[]).await;
    // Each node joins, leaves and kills members while c arrives and the three connect.
    let churn = |node: noex_remote::Node, seed: u64| {
        tokio::spawn(async move {
            let mut rng = seed;
            let mut pids = Vec::new();
            for step in 0..300u64 {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let group = format!("g{}", (rng >> 33) % 4);
                match (rng >> 40) % 6 {
                    0 | 1 if !pids.is_empty() => {
                        let pid: &Pid = &pids[(rng >> 20) as usize % pids.len()];
                        let _ = node.groups().leave(&group, pid);
                    }
                    2 if !pids.is_empty() => {
                        let pid = pids.swap_remove((rng >> 20) as usize % pids.len());
                        node.runtime().kill(&pid);
                    }
                    _ => {
                        if pids.len() < 3 || step % 3 == 0 {
                            pids.push(member(&node).await);
                        }
                        let pid = &pids[(rng >> 20) as usize % pids.len()];
                        let _ = node.groups().join(&group, pid);
                    }
                }
                if step % 4 == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        })
    };
    let churning = [churn(a.clone(), 1), churn(b.clone(), 2)];
    let c = full_node("c", &[a.id(), b.id()]).await;
    let on_c = churn(c.clone(), 3);
    for task in churning.into_iter().chain([on_c]) {
        task.await.unwrap();
    }
    for node in [&a, &b, &c] {
        wait_connected(node.cluster(), 2).await;
    }
    let groups = [a.groups().clone(), b.groups().clone(), c.groups().clone()];
    converged(&groups).await;
    assert!(!union_of_locals(&groups).is_empty(), "the churn left members to compare");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_change_another_nodes_members() {
    let nodes = mesh(3).await;
    let groups = scopes(&nodes);
    let p = member(&nodes[2]).await;
    groups[2].join("g", &p).unwrap();
    converged(&groups).await;
    let (_, mut on_0) = groups[0].monitor_scope();

    // Node 1 speaks for node 2's processes, and for node 0's own: each frame is refused whole.
    let of_2 = Pid::new(NodeName::new(nodes[2].id().as_str()), nodes[2].runtime().creation(), 999_999);
    let mine = member(&nodes[1]).await;
    let list = |pids: &[&Pid]| vec![GroupPids { group: "g".into(), pids: pids.iter().map(|p| (*p).clone()).collect() }];
    let sync = |joined, left, full| GroupsSync { scope: "default".into(), joined, left, full, answer_wanted: false };
    let forged = [
        sync(list(&[&of_2]), Vec::new(), None),
        sync(list(&[&mine, &of_2]), Vec::new(), None),
        sync(Vec::new(), list(&[&p]), None),
        sync(list(&[&p]), Vec::new(), Some(noex_proto::FullSync { id: 77, first: true, last: true })),
        sync(vec![GroupPids { group: "g".into(), pids: Vec::new() }], Vec::new(), None),
        sync(list(&[&Pid::new(NodeName::new(nodes[1].id().as_str()), 1, 1)]), Vec::new(), None),
    ];
    for frame in forged {
        nodes[1].cluster().send(nodes[0].id(), Frame::GroupsSync(frame)).unwrap();
    }
    // Queued after the forged frames on the same connection: once node 0 has it, it has judged them all.
    groups[1].join("marker", &mine).unwrap();
    assert_eq!(next_event(&mut on_0).await, join("marker", &[&mine]), "the forged frames changed nothing");
    assert_eq!(groups[0].members("g"), std::slice::from_ref(&p));
    converged(&groups).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_independent_and_a_scope_started_late_catches_up() {
    let nodes = mesh(2).await;
    let jobs_on_0 = nodes[0].scopes().scope("jobs").unwrap();
    let p = member(&nodes[0]).await;
    jobs_on_0.join("g", &p).unwrap();
    nodes[0].groups().join("other", &p).unwrap();
    // Node 1 runs no "jobs" scope yet: it ignores its frames, and asks for the memberships when it starts it.
    eventually("node 1 sees the default scope", || nodes[1].groups().members("other") == [p.clone()]).await;
    let jobs_on_1 = nodes[1].scopes().scope("jobs").unwrap();
    eventually("the late scope caught up", || jobs_on_1.members("g") == [p.clone()]).await;
    assert!(nodes[1].groups().members("g").is_empty(), "scopes do not share groups");
    assert_eq!(jobs_on_1.which_groups(), ["g"]);
    assert_eq!(nodes[0].scopes().scope("jobs").unwrap().members("g"), std::slice::from_ref(&p), "the same scope again");
    assert_eq!(nodes[1].scopes().names(), ["default", "jobs"]);
    assert!(matches!(nodes[0].scopes().scope(""), Err(GroupsError::BadName { what: "scope", .. })));
}

/// The bad day: every core busy, bursts of joins on three nodes, members killed mid-burst. Every node converges,
/// and a subscriber that replays its notifications from its first snapshot ends with exactly the final view
/// (nothing missed, nothing repeated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_with_kills_on_busy_cores_converge_and_every_change_is_notified() {
    let nodes = mesh(3).await;
    let groups = scopes(&nodes);
    let (snapshot, mut subscription) = groups[2].monitor_scope();
    let mut replayed: noex_tests::groups::View = snapshot
        .into_iter()
        .map(|(group, mut pids)| {
            pids.sort();
            (group, pids)
        })
        .collect();
    let _busy = noex_tests::load::BusyCores::all();
    let bursts: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|node| {
            tokio::spawn(async move {
                let mut members = Vec::new();
                for _ in 0..40 {
                    members.push(member(&node).await);
                }
                for (round, chunk) in members.chunks(4).enumerate() {
                    node.groups().join_many(&format!("g{}", round % 3), chunk).unwrap();
                    node.groups().join("all", &chunk[0]).unwrap();
                    if round % 2 == 1 {
                        node.runtime().kill(&chunk[1]); // mid-burst: its memberships go while others arrive
                    }
                }
            })
        })
        .collect();
    for burst in bursts {
        burst.await.unwrap();
    }
    converged(&groups).await;
    let final_view = view(&groups[2]);
    assert!(final_view.values().map(Vec::len).sum::<usize>() > 60, "members were left to compare");
    // Notified under the table's lock: every change of the converged view is already queued.
    while let Some(event) = subscription.try_next() {
        noex_tests::groups::replay(&mut replayed, event);
    }
    assert_eq!(replayed, final_view);
}
