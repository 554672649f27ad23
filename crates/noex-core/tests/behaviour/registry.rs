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
