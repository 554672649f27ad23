//! A key-value store and a job queue on two nodes in one program.
//!
//! Node `a` supervises a store (get / put / delete, entries that expire, swept every second) and a job queue whose
//! `take` waits until a job is there; both are registered globally. Node `b` calls the store by its global name.
//! A worker is spawned on `b` by behaviour name: it monitors the store and writes each job's result into it. Then
//! the store crashes: its supervisor restarts it under the same global name, the worker hears `DOWN` and finds
//! the new one.
//!
//! `cargo run -p noex-remote --example kv_jobs`

// An example program owns its output.
#![allow(clippy::print_stdout)]

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use noex_cluster::{ClusterConfig, Cookie};
use noex_core::{
    ChildSpec, Context, ExitReason, GenServer, Handle, Info, ReplyHandle, StartOptions, Strategy, Supervisor,
    SupervisorSpec,
};
use noex_registry::GlobalRegistry;
use noex_remote::{Node, SpawnOptions};
use serde::{Deserialize, Serialize};

/// Any error, for a program's story.
type Failed = Box<dyn std::error::Error + Send + Sync>;

const STORE: &str = "kv:store";
const QUEUE: &str = "jobs:queue";

// ---- The store ----------------------------------------------------------------------------------------------

/// Reads a key.
#[derive(Debug, Serialize, Deserialize)]
struct Get(String);

/// Writes a key, for `ttl_ms` if given.
#[derive(Debug, Serialize, Deserialize)]
struct Put {
    key: String,
    value: String,
    ttl_ms: Option<u64>,
}

/// Removes a key; answers whether it was there.
#[derive(Debug, Serialize, Deserialize)]
struct Delete(String);

/// Crashes the store (to show the supervisor at work).
#[derive(Debug, Serialize, Deserialize)]
struct Crash;

noex_core::requests! {
    #[derive(Debug, Serialize, Deserialize)]
    enum StoreCall -> StoreReply {
        Get(Get) -> Option<String>,
        Put(Put) -> (),
        Delete(Delete) -> bool,
        Crash(Crash) -> (),
    }
}

/// Entries and when they expire.
#[derive(Default)]
struct Store {
    entries: HashMap<String, (String, Option<Instant>)>,
}

/// The store's sweep tick: a local message, which no other node can send.
#[derive(Clone)]
struct Sweep;

impl GenServer for Store {
    type Call = StoreCall;
    type Reply = StoreReply;
    type Cast = ();

    async fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        ctx.send_interval(Duration::from_secs(1), Sweep);
        Ok(())
    }

    async fn handle_call(&mut self, call: StoreCall, ctx: &mut Context<Self>) -> StoreReply {
        call.dispatch(self, ctx).await
    }

    async fn handle_info(&mut self, info: Info, _ctx: &mut Context<Self>) {
        if info.message::<Sweep>().is_some() {
            let now = Instant::now();
            self.entries.retain(|_, (_, until)| until.is_none_or(|until| until > now));
        }
    }
}

impl Handle<Get> for Store {
    async fn handle(&mut self, Get(key): Get, _ctx: &mut Context<Self>) -> Option<String> {
        let (value, until) = self.entries.get(&key)?;
        until.is_none_or(|until| until > Instant::now()).then(|| value.clone())
    }
}

impl Handle<Put> for Store {
    async fn handle(&mut self, put: Put, _ctx: &mut Context<Self>) {
        let until = put.ttl_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
        self.entries.insert(put.key, (put.value, until));
    }
}

impl Handle<Delete> for Store {
    async fn handle(&mut self, Delete(key): Delete, _ctx: &mut Context<Self>) -> bool {
        self.entries.remove(&key).is_some()
    }
}

impl Handle<Crash> for Store {
    async fn handle(&mut self, _: Crash, _ctx: &mut Context<Self>) {
        panic!("asked to crash");
    }
}

// ---- The job queue ------------------------------------------------------------------------------------------

/// Takes the next job, waiting until there is one.
#[derive(Debug, Serialize, Deserialize)]
struct Take;

/// A job: square a number.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    id: u64,
    input: i64,
}

noex_core::serde_encodable!(StoreCall, StoreReply, Take, Job);

/// Jobs not taken yet, and takers waiting for one.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    takers: VecDeque<ReplyHandle<Job>>,
}

impl GenServer for Queue {
    type Call = Take;
    type Reply = Job;
    type Cast = Job;

    async fn handle_call(&mut self, _: Take, ctx: &mut Context<Self>) -> Job {
        match self.jobs.pop_front() {
            Some(job) => job,
            None => {
                self.takers.extend(ctx.reply_later()); // answered by the next cast
                Job { id: 0, input: 0 }
            }
        }
    }

    async fn handle_cast(&mut self, job: Job, _ctx: &mut Context<Self>) {
        match self.takers.pop_front() {
            Some(taker) => taker.reply(job),
            None => self.jobs.push_back(job),
        }
    }
}

// ---- The worker ---------------------------------------------------------------------------------------------

/// Takes jobs one after another and writes `job:<id>` into the store, by its global name (so whichever
/// incarnation holds it); monitors the store to say when it goes down.
struct Worker {
    registry: GlobalRegistry,
}

/// "Take the next job": the worker's loop, one self-sent message per turn, so that `DOWN`s get in between.
struct Next;

/// "Monitor the store (again)".
struct WatchStore;

impl Worker {
    fn watch_store(&self, ctx: &mut Context<Self>) {
        if let Some(store) = self.registry.whereis_ref::<Store>(STORE) {
            ctx.monitor(store.pid());
        }
    }
}

impl GenServer for Worker {
    type Call = ();
    type Reply = ();
    type Cast = ();

    async fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        self.watch_store(ctx);
        ctx.send_self(Next);
        Ok(())
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) {}

    async fn handle_info(&mut self, info: Info, ctx: &mut Context<Self>) {
        match info {
            info if info.message::<Next>().is_some() => self.next_job(ctx).await,
            info if info.message::<WatchStore>().is_some() => self.watch_store(ctx),
            // `noproc`: the name still named the dead store here; its successor's name is on its way.
            Info::Down(down) if down.reason != ExitReason::NoProc => {
                println!("worker: the store went down ({}); watching its successor", down.reason);
                ctx.send_after(Duration::from_millis(50), WatchStore);
            }
            Info::Down(_) => drop(ctx.send_after(Duration::from_millis(50), WatchStore)),
            _ => {}
        }
    }
}

impl Worker {
    async fn next_job(&mut self, ctx: &mut Context<Self>) {
        // Registered before this worker was spawned, on the same connection: already known here.
        let Some(queue) = self.registry.whereis_ref::<Queue>(QUEUE) else {
            return ctx.stop(ExitReason::error("no job queue"));
        };
        // Short takes, so that the worker sees its DOWNs between them.
        if let Ok(job) = queue.call_timeout(Take, Duration::from_millis(200)).await {
            let key = format!("job:{}", job.id);
            let value = (job.input * job.input).to_string();
            // Until the store takes it: a restarting store is missing, or still known here by its old pid.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let put = Put { key: key.clone(), value: value.clone(), ttl_ms: None };
                match self.registry.whereis_ref::<Store>(STORE) {
                    Some(store) if store.request(put).await.is_ok() => break,
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
        ctx.send_self(Next);
    }
}

// ---- The two nodes ------------------------------------------------------------------------------------------

async fn node(name: &str, seed: Option<&Node>) -> Result<Node, Failed> {
    let mut config = ClusterConfig::new(name);
    config.port = 0; // any free port: the node id carries the real one
    config.cookie = Some(Cookie::new("kv-jobs example"));
    config.seeds = seed.map(|seed| seed.id().to_string()).into_iter().collect();
    let node = Node::start(config).await?;
    let registry = node.registry().clone();
    node.remote().behaviours().register("worker", move |(): ()| Ok(Worker { registry: registry.clone() }));
    Ok(node)
}

/// Runs the whole story; returns what the store holds for the jobs, in order.
pub(crate) async fn run() -> Result<Vec<String>, Failed> {
    let a = node("a", None).await?;
    let b = node("b", Some(&a)).await?;
    b.cluster().connected_to(a.id()).await;

    let children = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::encodable_worker("store", Store::default).registered(a.registry().registrar(STORE)))
        .child(ChildSpec::encodable_worker("queue", Queue::default).registered(a.registry().registrar(QUEUE)));
    Supervisor::start(a.runtime(), children, StartOptions::default()).await?;
    println!("a: store and queue started under a supervisor, registered as {STORE} and {QUEUE}");

    // From b: the store by its global name (once the registration has reached b).
    let store = wait_for(|| b.whereis_global::<Store>(STORE)).await?;
    store.request(Put { key: "greeting".into(), value: "hello".into(), ttl_ms: None }).await?;
    store.request(Put { key: "session".into(), value: "s3cr3t".into(), ttl_ms: Some(500) }).await?;
    println!("b: greeting = {:?}", store.request(Get("greeting".into())).await?);
    println!("b: delete greeting -> {}", store.request(Delete("greeting".into())).await?);
    tokio::time::sleep(Duration::from_millis(1500)).await; // past the session's ttl and a sweep
    println!("b: session after its ttl = {:?}", store.request(Get("session".into())).await?);

    // A worker on b, spawned from a by behaviour name; jobs put on a.
    a.remote().spawn("worker", b.id(), SpawnOptions::default()).await?;
    let queue = wait_for(|| a.whereis_global::<Queue>(QUEUE)).await?;
    for id in 1..=3 {
        queue.cast(Job { id, input: id as i64 + 1 });
    }
    let results = wait_for_results(&a, 1..=3).await?;
    println!("a: results {results:?}");

    // The store crashes; its restart keeps the name, the worker follows, and the next jobs land in the new store.
    let crashed = store.request(Crash).await;
    println!("b: crash -> {}", crashed.map_or_else(|error| error.to_string(), |()| "no error?".into()));
    for id in 4..=5 {
        queue.cast(Job { id, input: id as i64 + 1 });
    }
    let after = wait_for_results(&a, 4..=5).await?;
    println!("a: results after the restart {after:?}");
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
    Ok(results.into_iter().chain(after).collect())
}

/// Polls `find` until it answers: for state that reaches another node without an event (a global name).
async fn wait_for<T>(mut find: impl FnMut() -> Option<T>) -> Result<T, Failed> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(found) = find() {
            return Ok(found);
        }
        if Instant::now() > deadline {
            return Err("not found within 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the store (whichever incarnation holds the name) has the results of jobs `ids`.
async fn wait_for_results(node: &Node, ids: std::ops::RangeInclusive<u64>) -> Result<Vec<String>, Failed> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut results = Vec::new();
        if let Some(store) = node.whereis_global::<Store>(STORE) {
            for id in ids.clone() {
                if let Ok(Some(value)) = store.request(Get(format!("job:{id}"))).await {
                    results.push(value);
                }
            }
        }
        if results.len() == ids.clone().count() {
            return Ok(results);
        }
        if Instant::now() > deadline {
            return Err(format!("the worker did not finish jobs {ids:?} within 5 s").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Failed> {
    run().await.map(drop)
}
