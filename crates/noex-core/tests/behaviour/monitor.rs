//! Monitors: exactly one DOWN, `noproc`, demonitor.

use std::time::Duration;

use noex_core::{ExitReason, Info, ProcessDown, Runtime};

use crate::support::{Call, Cast, Probe, Reply, within};

#[tokio::test]
async fn a_monitor_delivers_exactly_one_down_with_the_reason() {
    let runtime = Runtime::new();
    let (watcher, mut infos) = Probe::with_infos();
    let watcher = runtime.start(watcher).await.unwrap();
    let target = runtime.start(Probe::new()).await.unwrap();
    let Reply::Monitor(monitor) = watcher.call(Call::Monitor(target.pid().clone())).await.unwrap() else { panic!() };
    target.cast(Cast::StopWith(ExitReason::error("bad")));
    let info = within(infos.recv()).await.unwrap();
    let expected = ProcessDown { monitor, pid: target.pid().clone(), reason: ExitReason::error("bad") };
    assert_eq!(info, Info::Down(expected));
    let Reply::Infos(all) = watcher.call(Call::Infos).await.unwrap() else { panic!() };
    assert_eq!(all.len(), 1, "exactly one DOWN");
}

#[tokio::test]
async fn monitoring_a_dead_process_gives_noproc() {
    let runtime = Runtime::new();
    let (watcher, mut infos) = Probe::with_infos();
    let watcher = runtime.start(watcher).await.unwrap();
    let target = runtime.start(Probe::new()).await.unwrap();
    target.stop(ExitReason::Normal, Duration::from_secs(1)).await.unwrap();

    let Reply::Monitor(monitor) = watcher.call(Call::Monitor(target.pid().clone())).await.unwrap() else { panic!() };
    let expected = ProcessDown { monitor, pid: target.pid().clone(), reason: ExitReason::NoProc };
    assert_eq!(within(infos.recv()).await.unwrap(), Info::Down(expected));
    assert_eq!(within(runtime.monitor(target.pid())).await.reason, ExitReason::NoProc, "external monitors too");
}

#[tokio::test]
async fn no_down_after_demonitor_even_if_already_queued() {
    let runtime = Runtime::new();
    let watcher = runtime.start(Probe::new()).await.unwrap();
    let target = runtime.start(Probe::new()).await.unwrap();
    let Reply::Monitor(monitor) = watcher.call(Call::Monitor(target.pid().clone())).await.unwrap() else { panic!() };
    let demonitored = within(watcher.call(Call::KillThenDemonitor(target.pid().clone(), monitor))).await.unwrap();
    assert_eq!(demonitored, Reply::Demonitored(true));
    assert_eq!(watcher.call(Call::Infos).await.unwrap(), Reply::Infos(vec![]));
}

#[tokio::test]
async fn an_external_monitor_sees_normal_shutdown_and_killed() {
    let runtime = Runtime::new();
    for (reason, how) in [(ExitReason::Normal, 0), (ExitReason::Shutdown, 1), (ExitReason::Killed, 2)] {
        let target = runtime.start(Probe::new()).await.unwrap();
        let down = runtime.monitor(target.pid());
        match how {
            0 => target.cast(Cast::StopWith(ExitReason::Normal)),
            1 => drop(target.stop(ExitReason::Shutdown, Duration::from_secs(1)).await),
            _ => runtime.kill(target.pid()),
        }
        assert_eq!(within(down).await.reason, reason);
    }
}
