//! GenServer: calls, casts, ordering, timeouts, stop, init failures, panics.

use std::time::Duration;

use noex_core::{CallError, ExitReason, Runtime, StartError, StartOptions, StopError};

use crate::support::{Call, Cast, Probe, Reply, entries, journal, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_from_one_sender_arrive_in_order_before_a_later_call() {
    let runtime = Runtime::new();
    let probe = runtime.start(Probe::new()).await.unwrap();
    for n in 0..10_000 {
        probe.cast(Cast::Push(n));
    }
    let Reply::Seen(seen) = within(probe.call(Call::Seen)).await.unwrap() else { panic!("wrong reply") };
    assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_call_that_times_out_leaves_the_server_usable() {
    let runtime = Runtime::new();
    let probe = runtime.start(Probe::new()).await.unwrap();
    let slow = probe.call_timeout(Call::Sleep(Duration::from_millis(300)), Duration::from_millis(20)).await;
    assert_eq!(slow, Err(CallError::Timeout(Duration::from_millis(20))));
    probe.cast(Cast::Push(1));
    assert_eq!(within(probe.call(Call::Seen)).await, Ok(Reply::Seen(vec![1])));
}

#[tokio::test]
async fn calling_an_exited_server_is_noproc() {
    let runtime = Runtime::new();
    let probe = runtime.start(Probe::new()).await.unwrap();
    within(probe.stop(ExitReason::Normal, Duration::from_secs(1))).await.unwrap();
    assert!(!probe.is_alive());
    assert_eq!(probe.call(Call::Seen).await, Err(CallError::NoProc(noex_core::Callee::Pid(probe.pid().clone()))));
    assert!(probe.try_cast(Cast::Push(1)).is_err());
}

#[tokio::test]
async fn a_panicking_call_fails_with_the_crash_reason_and_the_runtime_lives_on() {
    let runtime = Runtime::new();
    let probe = runtime.start(Probe::new()).await.unwrap();
    let other = runtime.start(Probe::new()).await.unwrap();
    let result = within(probe.call(Call::Panic)).await;
    assert_eq!(result, Err(CallError::Exited(ExitReason::error("panic: asked to panic"))));
    assert!(!probe.is_alive());
    assert_eq!(within(other.call(Call::Seen)).await, Ok(Reply::Seen(vec![])));
}

#[tokio::test]
async fn calls_queued_behind_a_stop_get_the_exit_reason() {
    let runtime = Runtime::new();
    let probe = runtime.start(Probe::new()).await.unwrap();
    probe.cast(Cast::Sleep(Duration::from_millis(20)));
    // `join!` polls in order, so both calls are queued (stop first) while the server sleeps.
    let (stopped, queued) =
        within(async { tokio::join!(probe.call(Call::StopWith(ExitReason::Normal)), probe.call(Call::Seen)) }).await;
    assert_eq!(stopped, Ok(Reply::Done));
    assert_eq!(queued, Err(CallError::Exited(ExitReason::Normal)));
}

#[tokio::test]
async fn stop_runs_terminate_frees_the_name_and_waits_for_the_exit() {
    let runtime = Runtime::new();
    let log = journal();
    let probe = runtime.start_with(Probe::journaled("p", &log), StartOptions::named("p")).await.unwrap();
    probe.cast(Cast::Push(7));
    within(probe.stop(ExitReason::Shutdown, Duration::from_secs(1))).await.unwrap();
    assert_eq!(entries(&log), ["start p", "stop p"]);
    assert_eq!(runtime.whereis("p"), None);
    assert!(!runtime.is_alive(probe.pid()));
    assert_eq!(probe.stop(ExitReason::Normal, Duration::from_secs(1)).await, Err(StopError::NoProc));
}

#[tokio::test]
async fn stop_kills_a_server_that_does_not_finish_in_time() {
    let runtime = Runtime::new();
    let log = journal();
    let probe = runtime.start(Probe::journaled("stuck", &log)).await.unwrap();
    probe.cast(Cast::Sleep(Duration::from_secs(30)));
    let stopped = within(probe.stop(ExitReason::Shutdown, Duration::from_millis(30))).await;
    assert_eq!(stopped, Err(StopError::Timeout(Duration::from_millis(30))));
    assert!(!probe.is_alive());
    assert_eq!(entries(&log), ["start stuck"], "a killed server runs no terminate");
}

#[tokio::test]
async fn a_failing_or_panicking_init_fails_start() {
    let runtime = Runtime::new();
    let failing = Probe { fail_init: Some(ExitReason::error("no database")), ..Probe::new() };
    let result = runtime.start_with(failing, StartOptions::named("db")).await;
    assert_eq!(result.unwrap_err(), StartError::Init(ExitReason::error("no database")));
    assert_eq!(runtime.whereis("db"), None, "a failed start leaves no name behind");
    assert_eq!(runtime.process_count(), 0);
}

#[tokio::test]
async fn a_name_already_taken_is_a_typed_error() {
    let runtime = Runtime::new();
    let first = runtime.start_with(Probe::new(), StartOptions::named("only")).await.unwrap();
    let second = runtime.start_with(Probe::new(), StartOptions::named("only")).await;
    assert_eq!(second.unwrap_err(), StartError::NameTaken { name: "only".into(), holder: first.pid().clone() });
    assert_eq!(runtime.process_count(), 1);
}

#[tokio::test]
async fn a_crash_in_a_cast_ends_the_process_with_an_error_reason() {
    let runtime = Runtime::new();
    let probe = runtime.start(Probe::new()).await.unwrap();
    let down = runtime.monitor(probe.pid());
    probe.cast(Cast::Panic);
    assert_eq!(within(down).await.reason, ExitReason::error("panic: asked to panic"));
}

#[tokio::test]
async fn two_runtimes_in_one_process_are_separate_nodes() {
    use noex_core::{NodeName, RuntimeConfig};
    let a = Runtime::with_config(RuntimeConfig { node: NodeName::new("a@127.0.0.1:1"), ..Default::default() });
    let b =
        Runtime::with_config(RuntimeConfig { node: NodeName::new("b@127.0.0.1:2"), creation: 7, ..Default::default() });
    let on_a = a.start_with(Probe::new(), StartOptions::named("same")).await.unwrap();
    let on_b = b.start_with(Probe::new(), StartOptions::named("same")).await.unwrap();
    assert_eq!(on_a.pid().node().as_str(), "a@127.0.0.1:1");
    assert_eq!((on_b.pid().node().as_str(), on_b.pid().creation()), ("b@127.0.0.1:2", 7));
    assert!(!a.is_alive(on_b.pid()), "a runtime does not see another node's processes as its own");
}

#[tokio::test]
async fn a_failed_start_has_freed_its_name_when_it_returns() {
    let runtime = Runtime::new();
    for _ in 0..50 {
        let failing = Probe { fail_init: Some(ExitReason::error("no")), ..Probe::new() };
        assert!(runtime.start_with(failing, StartOptions::named("retry")).await.is_err());
        let ok = runtime.start_with(Probe::new(), StartOptions::named("retry")).await.expect("the name is free");
        ok.stop(ExitReason::Normal, Duration::from_secs(1)).await.unwrap();
    }
}

/// Kills itself during `init`, then would wait forever.
struct SelfKiller;

impl noex_core::GenServer for SelfKiller {
    type Call = ();
    type Reply = ();
    type Cast = ();

    async fn init(&mut self, ctx: &mut noex_core::Context<Self>) -> Result<(), ExitReason> {
        ctx.runtime().kill(ctx.pid());
        std::future::pending().await
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut noex_core::Context<Self>) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_init_is_never_lost() {
    let runtime = Runtime::new();
    for _ in 0..100 {
        let started = within(runtime.start(SelfKiller)).await;
        assert_eq!(started.unwrap_err(), StartError::Init(ExitReason::Killed));
    }
    assert_eq!(runtime.process_count(), 0);
}

/// Never finishes `init`.
struct Hangs;

impl noex_core::GenServer for Hangs {
    type Call = ();
    type Reply = ();
    type Cast = ();

    async fn init(&mut self, _ctx: &mut noex_core::Context<Self>) -> Result<(), ExitReason> {
        std::future::pending().await
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut noex_core::Context<Self>) {}
}

#[tokio::test]
async fn an_init_past_its_timeout_fails_the_start_and_leaves_no_process() {
    let runtime = Runtime::new();
    let options = StartOptions::named("slow").init_timeout(Duration::from_millis(50));
    let started = within(runtime.start_with(Hangs, options)).await;
    assert_eq!(started.unwrap_err(), StartError::InitTimeout(Duration::from_millis(50)));
    // Like any failed start, it has freed its name when it returns.
    let again = runtime.start_with(Probe::new(), StartOptions::named("slow")).await.expect("the name is free");
    assert_eq!(runtime.process_count(), 1);
    again.stop(ExitReason::Normal, Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_roots_newest_first_and_lets_supervisors_stop_their_children() {
    use noex_core::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
    let runtime = Runtime::new();
    let log = journal();
    let (a, b) = (log.clone(), log.clone());
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::worker("a", move || Probe::journaled("a", &a)))
        .child(ChildSpec::worker("b", move || Probe::journaled("b", &b)));
    Supervisor::start(&runtime, spec, StartOptions::default()).await.unwrap();
    runtime.start(Probe::journaled("c", &log)).await.unwrap();
    within(runtime.shutdown(Duration::from_secs(1))).await;
    assert_eq!(entries(&log), ["start a", "start b", "start c", "stop c", "stop b", "stop a"], "no restarts");
    assert_eq!(runtime.process_count(), 0);
}

#[tokio::test]
async fn cast_after_delivers_later_and_a_cancelled_timer_never_fires() {
    let runtime = Runtime::new();
    let probe = runtime.start(Probe::new()).await.unwrap();
    let (cancelled_tx, cancelled) = tokio::sync::oneshot::channel();
    let (fired_tx, fired) = tokio::sync::oneshot::channel();
    let started = tokio::time::Instant::now();
    probe.call(Call::CastAfter(Duration::from_millis(10), Cast::Notify(cancelled_tx), true)).await.unwrap();
    probe.call(Call::CastAfter(Duration::from_millis(30), Cast::Notify(fired_tx), false)).await.unwrap();
    within(fired).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert!(within(cancelled).await.is_err(), "the cancelled timer dropped its message unsent");
}
