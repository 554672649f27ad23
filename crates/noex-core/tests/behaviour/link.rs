//! Links: abnormal exits propagate, normal ones do not, trap_exit turns them into messages, kill is untrappable.

use std::time::Duration;

use noex_core::{Context, ExitReason, ExitSignal, GenServer, Info, NoProc, Runtime, StartOptions};

use crate::support::{Call, Cast, Probe, Reply, within};

#[tokio::test]
async fn an_abnormal_exit_kills_a_linked_process_that_does_not_trap() {
    let runtime = Runtime::new();
    let a = runtime.start(Probe::new()).await.unwrap();
    let b = runtime.start(Probe::new()).await.unwrap();
    assert_eq!(a.call(Call::Link(b.pid().clone())).await.unwrap(), Reply::Linked(Ok(())));
    let a_down = runtime.monitor(a.pid());
    b.cast(Cast::StopWith(ExitReason::error("crash")));
    assert_eq!(within(a_down).await.reason, ExitReason::error("crash"));
}

#[tokio::test]
async fn links_work_in_both_directions() {
    let runtime = Runtime::new();
    let a = runtime.start(Probe::new()).await.unwrap();
    let b = runtime.start(Probe::new()).await.unwrap();
    a.call(Call::Link(b.pid().clone())).await.unwrap();
    let b_down = runtime.monitor(b.pid());
    a.cast(Cast::Panic);
    assert_eq!(within(b_down).await.reason, ExitReason::error("panic: asked to panic"));
}

#[tokio::test]
async fn a_normal_exit_does_not_propagate() {
    let runtime = Runtime::new();
    let a = runtime.start(Probe::new()).await.unwrap();
    let b = runtime.start(Probe::new()).await.unwrap();
    a.call(Call::Link(b.pid().clone())).await.unwrap();
    within(b.stop(ExitReason::Normal, Duration::from_secs(1))).await.unwrap();
    assert_eq!(within(a.call(Call::Seen)).await, Ok(Reply::Seen(vec![])), "a is still alive");
}

#[tokio::test]
async fn a_trapping_process_receives_exit_messages_and_lives() {
    let runtime = Runtime::new();
    let (a, mut infos) = Probe::with_infos();
    let a = runtime.start(a).await.unwrap();
    let b = runtime.start(Probe::new()).await.unwrap();
    a.call(Call::TrapExits).await.unwrap();
    a.call(Call::Link(b.pid().clone())).await.unwrap();
    b.cast(Cast::StopWith(ExitReason::error("crash")));
    let expected = ExitSignal { from: b.pid().clone(), reason: ExitReason::error("crash") };
    assert_eq!(within(infos.recv()).await.unwrap(), Info::Exit(expected));
    assert!(a.is_alive());
}

#[tokio::test]
async fn kill_cannot_be_trapped() {
    let runtime = Runtime::new();
    let a = runtime.start(Probe::new()).await.unwrap();
    a.call(Call::TrapExits).await.unwrap();
    let down = runtime.monitor(a.pid());
    runtime.kill(a.pid());
    assert_eq!(within(down).await.reason, ExitReason::Killed);
}

#[tokio::test]
async fn an_exit_signal_kills_a_busy_process_without_waiting_for_its_mailbox() {
    let runtime = Runtime::new();
    let a = runtime.start(Probe::new()).await.unwrap();
    a.cast(Cast::Sleep(Duration::from_secs(30)));
    let down = runtime.monitor(a.pid());
    runtime.exit(a.pid(), ExitReason::error("go away"));
    assert_eq!(within(down).await.reason, ExitReason::error("go away"));
}

#[tokio::test]
async fn linking_to_a_dead_process_is_noproc() {
    let runtime = Runtime::new();
    let a = runtime.start(Probe::new()).await.unwrap();
    let b = runtime.start(Probe::new()).await.unwrap();
    b.stop(ExitReason::Normal, Duration::from_secs(1)).await.unwrap();
    assert_eq!(a.call(Call::Link(b.pid().clone())).await.unwrap(), Reply::Linked(Err(NoProc(b.pid().clone()))));
}

/// Starts a linked child in `init`, then crashes when told to.
struct Parent;

impl GenServer for Parent {
    type Call = ();
    type Reply = noex_core::Pid;
    type Cast = ();

    async fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        ctx.start_link(Probe::new(), StartOptions::named("child"))
            .await
            .map(drop)
            .map_err(|e| ExitReason::error(e.to_string()))
    }

    async fn handle_call(&mut self, _: (), ctx: &mut Context<Self>) -> noex_core::Pid {
        ctx.runtime().whereis("child").unwrap()
    }

    async fn handle_cast(&mut self, _: (), _ctx: &mut Context<Self>) {
        panic!("parent crash");
    }
}

#[tokio::test]
async fn start_link_ties_the_child_to_its_parent() {
    let runtime = Runtime::new();
    let parent = runtime.start(Parent).await.unwrap();
    let child = parent.call(()).await.unwrap();
    assert_eq!(runtime.process_info(&child).unwrap().parent.as_ref(), Some(parent.pid()));
    let child_down = runtime.monitor(&child);
    parent.cast(());
    assert_eq!(within(child_down).await.reason, ExitReason::error("panic: parent crash"));
}

#[tokio::test]
async fn after_unlink_an_exit_has_no_effect() {
    let runtime = Runtime::new();
    let (a, _infos) = Probe::with_infos();
    let a = runtime.start(a).await.unwrap();
    let b = runtime.start(Probe::new()).await.unwrap();
    a.call(Call::TrapExits).await.unwrap();
    a.call(Call::Link(b.pid().clone())).await.unwrap();
    a.call(Call::Unlink(b.pid().clone())).await.unwrap();
    let b_down = runtime.monitor(b.pid());
    b.cast(Cast::Panic);
    within(b_down).await;
    assert_eq!(a.call(Call::Infos).await.unwrap(), Reply::Infos(vec![]), "no EXIT after unlink");
}
