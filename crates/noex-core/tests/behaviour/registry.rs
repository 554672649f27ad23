//! The local name registry.

use std::time::Duration;

use noex_core::{ExitReason, RegistryError, Runtime};

use crate::support::{Cast, Probe, within};

#[tokio::test]
async fn register_whereis_unregister() {
    let runtime = Runtime::new();
    let a = runtime.start(Probe::new()).await.unwrap();
    let b = runtime.start(Probe::new()).await.unwrap();
    runtime.register("svc", a.pid()).unwrap();
    assert_eq!(runtime.whereis("svc").as_ref(), Some(a.pid()));
    assert_eq!(
        runtime.register("svc", b.pid()),
        Err(RegistryError::NameTaken { name: "svc".into(), holder: a.pid().clone() })
    );
    assert_eq!(
        runtime.register("other", a.pid()),
        Err(RegistryError::AlreadyNamed { pid: a.pid().clone(), name: "svc".into() })
    );
    assert!(runtime.whereis_server::<Probe>("svc").is_some());
    assert!(runtime.unregister("svc"));
    assert!(!runtime.unregister("svc"));
    assert_eq!(runtime.whereis("svc"), None);
    runtime.register("svc", b.pid()).unwrap();
    assert_eq!(runtime.registered(), [("svc".to_owned(), b.pid().clone())]);
}

#[tokio::test]
async fn a_name_is_freed_when_its_process_exits() {
    let runtime = Runtime::new();
    let a = runtime.start(Probe::new()).await.unwrap();
    runtime.register("svc", a.pid()).unwrap();
    let down = runtime.monitor(a.pid());
    a.cast(Cast::Panic);
    within(down).await;
    assert_eq!(runtime.whereis("svc"), None, "freed by the time the DOWN arrives");
    let b = runtime.start(Probe::new()).await.unwrap();
    runtime.register("svc", b.pid()).unwrap();
    b.stop(ExitReason::Normal, Duration::from_secs(1)).await.unwrap();
    assert_eq!(runtime.register("svc", b.pid()), Err(RegistryError::NoProc));
}

#[tokio::test]
async fn a_start_its_registrar_refuses_fails_with_the_registrars_error_and_leaves_nothing() {
    let runtime = Runtime::new();
    let refuse = noex_core::Registrar::new(|_| Err(noex_core::StartError::Registration("no room".into())));
    let options = noex_core::StartOptions::named("refused").registered(refuse);
    let started = runtime.start_with(Probe::new(), options).await;
    assert_eq!(started.err(), Some(noex_core::StartError::Registration("no room".into())));
    assert_eq!(runtime.whereis("refused"), None, "its local name is free again");
    assert_eq!(runtime.process_count(), 0, "no process left behind");
    // The name is usable at once.
    let again = runtime.start_with(Probe::new(), noex_core::StartOptions::named("refused")).await.unwrap();
    assert_eq!(runtime.whereis("refused").as_ref(), Some(again.pid()));
}
