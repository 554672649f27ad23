//! A one-node tour: a supervisor with two counters, a crash, a restart, and what the runtime reports.
//!
//! `cargo run -p noex-core --example supervision`

// An example program owns its output.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use noex_core::{
    ChildSpec, Context, ExitReason, GenServer, LifecycleEvent, Runtime, StartOptions, Strategy, Supervisor,
    SupervisorSpec,
};

struct Counter(i64);

enum Op {
    Get,
    Crash,
}

impl GenServer for Counter {
    type Call = Op;
    type Reply = i64;
    type Cast = i64;

    async fn handle_call(&mut self, op: Op, _ctx: &mut Context<Self>) -> i64 {
        match op {
            Op::Get => self.0,
            Op::Crash => panic!("counter asked to crash"),
        }
    }

    async fn handle_cast(&mut self, by: i64, _ctx: &mut Context<Self>) {
        self.0 += by;
    }
}

#[tokio::main]
async fn main() {
    let runtime = Runtime::new();
    let mut events = runtime.lifecycle_events();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::worker("a", || Counter(0)).named("counter:a"))
        .child(ChildSpec::worker("b", || Counter(100)).named("counter:b"));
    let supervisor = Supervisor::start(&runtime, spec, StartOptions::named("counters")).await.expect("start");

    let a = runtime.whereis_server::<Counter>("counter:a").expect("counter:a is registered");
    a.cast(5);
    println!("counter:a = {:?}", a.call(Op::Get).await);
    println!("crashing counter:a: {:?}", a.call(Op::Crash).await);

    loop {
        match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            Ok(Ok(LifecycleEvent::Restarted { child_id, old, new, .. })) => {
                println!("supervisor restarted child '{child_id}': {old} -> {new}");
                break;
            }
            Ok(Ok(event)) => println!("event: {event:?}"),
            other => panic!("no restart seen: {other:?}"),
        }
    }
    let a = runtime.whereis_server::<Counter>("counter:a").expect("restarted under its name");
    println!("counter:a after restart = {:?}", a.call(Op::Get).await);

    for process in runtime.processes() {
        println!(
            "{} {:?} name={:?} processed={} supervisor={:?}",
            process.pid, process.kind, process.name, process.messages_processed, process.supervisor
        );
    }
    supervisor.stop(Duration::from_secs(5)).await.expect("orderly shutdown");
    println!("stopped; {} processes left, exit reason of the tree: {}", runtime.process_count(), ExitReason::Shutdown);
}
