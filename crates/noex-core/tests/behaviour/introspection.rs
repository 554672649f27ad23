//! Introspection: what an observer can count.

use std::time::Duration;

use noex_core::{ChildSpec, ProcessKind, ProcessStatus, Runtime, StartOptions, Strategy, Supervisor, SupervisorSpec};

use crate::support::{Call, Cast, Probe, Reply, within};

#[tokio::test]
async fn processes_report_kind_name_status_counts_and_system_flag() {
    let runtime = Runtime::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::worker("w1", Probe::new))
        .child(ChildSpec::worker("w2", Probe::new));
    let supervisor = Supervisor::start(&runtime, spec, StartOptions::named("sup")).await.unwrap();
    let busy = runtime.start_with(Probe::new(), StartOptions::named("busy")).await.unwrap();
    runtime.start_with(Probe::new(), StartOptions::default().system()).await.unwrap();

    for n in 0..10 {
        busy.cast(Cast::Push(n));
    }
    assert_eq!(within(busy.call(Call::Seen)).await.unwrap(), Reply::Seen((0..10).collect()));

    let all = runtime.processes();
    assert_eq!(all.len(), 5);
    assert_eq!(all.iter().filter(|p| !p.system).count(), 4, "system processes can be left out");
    let busy_info = runtime.process_info(busy.pid()).unwrap();
    assert_eq!(busy_info.messages_processed, 11, "ten casts and one call");
    assert_eq!(busy_info.name.as_deref(), Some("busy"));
    assert_eq!((busy_info.kind, busy_info.status), (ProcessKind::Server, ProcessStatus::Running));

    let sup = runtime.process_info(supervisor.pid()).unwrap();
    assert_eq!(sup.kind, ProcessKind::Supervisor);
    let figures = sup.supervisor.unwrap();
    assert_eq!((figures.strategy, figures.child_count, figures.restarts), (Strategy::OneForOne, 2, 0));
    let children = all.iter().filter(|p| p.parent.as_ref() == Some(supervisor.pid())).count();
    assert_eq!(children, 2);
}

#[tokio::test]
async fn mailbox_length_counts_messages_waiting_behind_the_current_one() {
    let runtime = Runtime::new();
    let probe = runtime.start(Probe::new()).await.unwrap();
    let (started, busy) = tokio::sync::oneshot::channel();
    probe.cast(Cast::Block(started, Duration::from_secs(30)));
    within(busy).await.unwrap();
    for n in 0..5 {
        probe.cast(Cast::Push(n));
    }
    assert_eq!(runtime.process_info(probe.pid()).unwrap().mailbox_len, 5);
    assert_eq!(probe.mailbox_len(), 5);
}
