//! Supervisors: restarts per strategy and policy, intensity, ordered start and shutdown, dynamic children.

use std::time::Duration;

use noex_core::{
    ChildSpec, ExitReason, LifecycleEvent, LifecycleEvents, Pid, Restart, Runtime, StartOptions, Strategy, Supervisor,
    SupervisorError, SupervisorRef, SupervisorSpec,
};

use crate::support::{Cast, Journal, Probe, entries, journal, within};

fn worker(id: &str, log: &Journal) -> ChildSpec {
    let (label, log) = (id.to_owned(), log.clone());
    ChildSpec::worker(id, move || Probe::journaled(&label, &log))
}

async fn children(supervisor: &SupervisorRef) -> Vec<Option<Pid>> {
    supervisor.which_children().await.unwrap().into_iter().map(|child| child.pid).collect()
}

async fn next_restart(events: &mut LifecycleEvents) -> (Pid, Pid) {
    within(async {
        loop {
            if let LifecycleEvent::Restarted { old, new, .. } = events.recv().await.unwrap() {
                return (old, new);
            }
        }
    })
    .await
}

fn crash(runtime: &Runtime, pid: &Pid) {
    runtime.server_ref::<Probe>(pid).expect("a running probe").cast(Cast::Panic);
}

#[tokio::test]
async fn a_panicking_child_is_restarted_under_its_name() {
    let runtime = Runtime::new();
    let log = journal();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(worker("w", &log).named("w"));
    let supervisor = Supervisor::start(&runtime, spec, StartOptions::default()).await.unwrap();
    let mut events = runtime.lifecycle_events();
    let old = runtime.whereis("w").unwrap();
    crash(&runtime, &old);
    let (crashed, new) = next_restart(&mut events).await;
    assert_eq!(crashed, old);
    assert_ne!(new, old);
    assert_eq!(runtime.whereis("w"), Some(new.clone()));
    assert_eq!(children(&supervisor).await, [Some(new)]);
    let info = runtime.process_info(supervisor.pid()).unwrap().supervisor.unwrap();
    assert_eq!((info.child_count, info.restarts), (1, 1));
}

async fn crash_middle_child(strategy: Strategy) -> (Vec<Option<Pid>>, Vec<Option<Pid>>) {
    let runtime = Runtime::new();
    let log = journal();
    let spec = SupervisorSpec::new(strategy).child(worker("a", &log)).child(worker("b", &log)).child(worker("c", &log));
    let supervisor = Supervisor::start(&runtime, spec, StartOptions::default()).await.unwrap();
    let mut events = runtime.lifecycle_events();
    let before = children(&supervisor).await;
    crash(&runtime, before[1].as_ref().unwrap());
    next_restart(&mut events).await;
    (before, children(&supervisor).await)
}

#[tokio::test]
async fn one_for_one_restarts_only_the_crashed_child() {
    let (before, after) = crash_middle_child(Strategy::OneForOne).await;
    assert_eq!((&after[0], &after[2]), (&before[0], &before[2]));
    assert_ne!(after[1], before[1]);
}

#[tokio::test]
async fn one_for_all_restarts_every_child() {
    let (before, after) = crash_middle_child(Strategy::OneForAll).await;
    for (old, new) in before.iter().zip(&after) {
        assert!(new.is_some() && new != old);
    }
}

#[tokio::test]
async fn rest_for_one_restarts_the_crashed_child_and_those_after_it() {
    let (before, after) = crash_middle_child(Strategy::RestForOne).await;
    assert_eq!(after[0], before[0]);
    assert!(after[1] != before[1] && after[2] != before[2]);
    assert!(after.iter().all(Option::is_some));
}

#[tokio::test]
async fn exceeding_the_restart_intensity_stops_the_supervisor_and_its_children() {
    let runtime = Runtime::new();
    let log = journal();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(5))
        .child(worker("w", &log))
        .child(worker("other", &log));
    let supervisor = Supervisor::start(&runtime, spec, StartOptions::default()).await.unwrap();
    let supervisor_down = runtime.monitor(supervisor.pid());
    let mut events = runtime.lifecycle_events();
    for _ in 0..3 {
        let pid = children(&supervisor).await[0].clone().unwrap();
        crash(&runtime, &pid);
        next_restart(&mut events).await;
    }
    let pids = children(&supervisor).await;
    let other_down = runtime.monitor(pids[1].as_ref().unwrap());
    crash(&runtime, pids[0].as_ref().unwrap());
    assert_eq!(within(supervisor_down).await.reason, ExitReason::Shutdown);
    assert_eq!(within(other_down).await.reason, ExitReason::Shutdown);
    assert_eq!(runtime.process_count(), 0);
}

#[tokio::test]
async fn children_start_in_order_and_stop_in_reverse() {
    let runtime = Runtime::new();
    let log = journal();
    let nested = SupervisorSpec::new(Strategy::OneForOne).child(worker("n1", &log));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", &log))
        .child(ChildSpec::supervisor("nested", nested))
        .child(worker("c", &log));
    let supervisor = Supervisor::start(&runtime, spec, StartOptions::default()).await.unwrap();
    assert_eq!(entries(&log), ["start a", "start n1", "start c"]);
    within(supervisor.stop(Duration::from_secs(5))).await.unwrap();
    assert_eq!(entries(&log)[3..], ["stop c", "stop n1", "stop a"]);
    assert_eq!(runtime.process_count(), 0);
}

#[tokio::test]
async fn transient_and_temporary_children_are_not_restarted_after_a_clean_exit() {
    let runtime = Runtime::new();
    let log = journal();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("transient", &log).restart(Restart::Transient))
        .child(worker("temporary", &log).restart(Restart::Temporary));
    let supervisor = Supervisor::start(&runtime, spec, StartOptions::default()).await.unwrap();
    let pids = children(&supervisor).await;
    let (transient, temporary) = (pids[0].clone().unwrap(), pids[1].clone().unwrap());

    let down = runtime.monitor(&transient);
    runtime.server_ref::<Probe>(&transient).unwrap().cast(Cast::StopWith(ExitReason::Normal));
    within(down).await;
    let down = runtime.monitor(&temporary);
    crash(&runtime, &temporary);
    within(down).await;

    let after = supervisor.which_children().await.unwrap();
    assert_eq!(after.len(), 1, "the temporary child's spec is gone");
    assert_eq!((&*after[0].id, &after[0].pid), ("transient", &None), "the transient child stays down");
}

#[tokio::test]
async fn a_transient_child_is_restarted_after_a_crash() {
    let runtime = Runtime::new();
    let log = journal();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(worker("t", &log).restart(Restart::Transient));
    let supervisor = Supervisor::start(&runtime, spec, StartOptions::default()).await.unwrap();
    let mut events = runtime.lifecycle_events();
    let old = children(&supervisor).await[0].clone().unwrap();
    crash(&runtime, &old);
    let (_, new) = next_restart(&mut events).await;
    assert_eq!(children(&supervisor).await, [Some(new)]);
}

#[tokio::test]
async fn children_can_be_started_terminated_restarted_and_deleted() {
    let runtime = Runtime::new();
    let log = journal();
    let supervisor =
        Supervisor::start(&runtime, SupervisorSpec::new(Strategy::OneForOne), StartOptions::default()).await.unwrap();
    let first = supervisor.start_child(worker("d", &log)).await.unwrap();
    assert!(runtime.is_alive(&first));
    let duplicate = supervisor.start_child(worker("d", &log)).await;
    assert_eq!(duplicate, Err(SupervisorError::AlreadyPresent("d".into())));

    supervisor.terminate_child("d").await.unwrap();
    assert!(!runtime.is_alive(&first));
    assert_eq!(children(&supervisor).await, [None]);
    assert_eq!(supervisor.delete_child("nope").await, Err(SupervisorError::NotFound("nope".into())));

    let second = supervisor.restart_child("d").await.unwrap();
    assert_ne!(second, first);
    assert_eq!(supervisor.delete_child("d").await, Err(SupervisorError::Running("d".into())));
    supervisor.terminate_child("d").await.unwrap();
    supervisor.delete_child("d").await.unwrap();
    assert!(supervisor.which_children().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_child_that_fails_to_start_fails_the_supervisor_start() {
    let runtime = Runtime::new();
    let log = journal();
    let failing = ChildSpec::worker("bad", || Probe { fail_init: Some(ExitReason::error("nope")), ..Probe::new() });
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(worker("good", &log)).child(failing);
    let result = Supervisor::start(&runtime, spec, StartOptions::default()).await;
    assert!(result.is_err());
    assert_eq!(entries(&log), ["start good", "stop good"], "the started child is stopped again");
    assert_eq!(runtime.process_count(), 0);
}

#[tokio::test]
async fn a_child_that_cannot_restart_exhausts_the_intensity_without_blocking_the_supervisor() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runtime = Runtime::new();
    let starts = Arc::new(AtomicUsize::new(0));
    let counter = starts.clone();
    let flaky = ChildSpec::worker("flaky", move || {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        Probe { fail_init: (!first).then(|| ExitReason::error("cannot start again")), ..Probe::new() }
    });
    let spec = SupervisorSpec::new(Strategy::OneForOne).intensity(3, Duration::from_secs(5)).child(flaky);
    let supervisor = Supervisor::start(&runtime, spec, StartOptions::default()).await.unwrap();
    let supervisor_down = runtime.monitor(supervisor.pid());
    let child = children(&supervisor).await[0].clone().unwrap();
    crash(&runtime, &child);
    assert_eq!(within(supervisor_down).await.reason, ExitReason::Shutdown);
    assert_eq!(starts.load(Ordering::SeqCst), 4, "the first start and three failed restarts");
}
