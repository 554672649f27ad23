//! Lifecycle events.

use noex_core::{ExitReason, LifecycleEvent, ProcessKind, Runtime, StartOptions};

use crate::support::{Cast, Probe, within};

#[tokio::test]
async fn started_and_terminated_events_carry_name_and_reason() {
    let runtime = Runtime::new();
    let mut events = runtime.lifecycle_events();
    let probe = runtime.start_with(Probe::new(), StartOptions::named("p")).await.unwrap();
    probe.cast(Cast::StopWith(ExitReason::error("done")));
    let started = within(events.recv()).await.unwrap();
    assert_eq!(
        started,
        LifecycleEvent::Started {
            pid: probe.pid().clone(),
            name: Some("p".into()),
            kind: ProcessKind::Server,
            system: false
        }
    );
    let terminated = within(events.recv()).await.unwrap();
    assert_eq!(
        terminated,
        LifecycleEvent::Terminated {
            pid: probe.pid().clone(),
            name: Some("p".into()),
            reason: ExitReason::error("done"),
            system: false
        }
    );
}

#[tokio::test]
async fn a_slow_subscriber_is_told_how_many_events_it_missed() {
    use noex_core::{LifecycleError, RuntimeConfig};
    let runtime = Runtime::with_config(RuntimeConfig { lifecycle_buffer: 2, ..Default::default() });
    let mut events = runtime.lifecycle_events();
    for _ in 0..5 {
        runtime.start(Probe::new()).await.unwrap();
    }
    assert_eq!(events.recv().await, Err(LifecycleError::Lagged(3)));
    assert!(matches!(events.recv().await, Ok(LifecycleEvent::Started { .. })));
}
