//! Messages a process sends itself: periodic and one-shot timers, and continuations.

use std::time::Duration;

use noex_core::{Context, ExitReason, GenServer, Info, LocalMessage, Runtime, Timer};
use tokio::sync::mpsc;

use crate::support::within;

/// Private to the server: no other process (and no node) can send it.
#[derive(Clone, Debug)]
struct Tick(u32, #[allow(dead_code, reason = "held to see when the timer lets go of it")] std::sync::Arc<()>);

struct Once;

/// Records, in order, what its callbacks saw.
struct Ticker {
    log: mpsc::UnboundedSender<String>,
    interval: Option<Timer>,
    /// Ask for a continuation from init.
    continue_from_init: bool,
}

enum Op {
    StartInterval(Duration, std::sync::Arc<()>),
    CancelInterval,
    SendAfter(Duration),
    PanicInContinue,
}

impl GenServer for Ticker {
    type Call = Op;
    type Reply = ();
    type Cast = String;

    async fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        if self.continue_from_init {
            ctx.continue_with("after init");
        }
        Ok(())
    }

    async fn handle_call(&mut self, op: Op, ctx: &mut Context<Self>) {
        match op {
            Op::StartInterval(period, alive) => self.interval = Some(ctx.send_interval(period, Tick(7, alive))),
            Op::CancelInterval => self.interval.take().expect("started").cancel(),
            Op::SendAfter(delay) => drop(ctx.send_after(delay, Once)),
            Op::PanicInContinue => ctx.continue_with(0_u8),
        }
    }

    async fn handle_cast(&mut self, text: String, ctx: &mut Context<Self>) {
        if text == "continue" {
            ctx.continue_with(String::from("after cast"));
        }
        if text == "self" {
            ctx.send_self(Once);
        }
        let _ = self.log.send(format!("cast {text}"));
    }

    async fn handle_info(&mut self, info: Info, _ctx: &mut Context<Self>) {
        let seen = match (info.message::<Tick>(), info.message::<Once>()) {
            (Some(Tick(n, _)), _) => format!("tick {n}"),
            (_, Some(Once)) => "once".to_string(),
            _ => "other".to_string(),
        };
        let _ = self.log.send(seen);
    }

    async fn handle_continue(&mut self, msg: LocalMessage, _ctx: &mut Context<Self>) {
        if msg.is::<u8>() {
            panic!("continuation failed");
        }
        let text = match msg.downcast::<&'static str>() {
            Ok(text) => text.to_string(),
            Err(msg) => msg.downcast::<String>().expect("a String"),
        };
        let _ = self.log.send(format!("continue {text}"));
    }
}

fn ticker(continue_from_init: bool) -> (Ticker, mpsc::UnboundedReceiver<String>) {
    let (log, seen) = mpsc::unbounded_channel();
    (Ticker { log, interval: None, continue_from_init }, seen)
}

#[tokio::test]
async fn send_interval_ticks_until_cancelled() {
    let runtime = Runtime::new();
    let (server, mut seen) = ticker(false);
    let server = runtime.start(server).await.unwrap();
    server.call(Op::StartInterval(Duration::from_millis(5), Default::default())).await.unwrap();
    for _ in 0..3 {
        assert_eq!(within(seen.recv()).await.as_deref(), Some("tick 7"));
    }
    server.call(Op::CancelInterval).await.unwrap();
    // Ticks sent before the cancel may still be queued; a cast after them marks the end of the queue.
    server.cast("marker".into());
    while within(seen.recv()).await.as_deref() != Some("cast marker") {}
    server.cast("second marker".into());
    tokio::time::sleep(Duration::from_millis(30)).await; // six periods: a live timer would tick here
    assert_eq!(within(seen.recv()).await.as_deref(), Some("cast second marker"), "no tick after the cancel");
}

#[tokio::test]
async fn send_after_sends_a_local_message_once() {
    let runtime = Runtime::new();
    let (server, mut seen) = ticker(false);
    let server = runtime.start(server).await.unwrap();
    let started = tokio::time::Instant::now();
    server.call(Op::SendAfter(Duration::from_millis(20))).await.unwrap();
    assert_eq!(within(seen.recv()).await.as_deref(), Some("once"));
    assert!(started.elapsed() >= Duration::from_millis(20));
}

#[tokio::test]
async fn an_interval_ends_with_its_process() {
    let runtime = Runtime::new();
    let (server, mut seen) = ticker(false);
    let server = runtime.start(server).await.unwrap();
    let alive = std::sync::Arc::new(());
    server.call(Op::StartInterval(Duration::from_millis(1), alive.clone())).await.unwrap();
    assert_eq!(within(seen.recv()).await.as_deref(), Some("tick 7"));
    server.stop(ExitReason::Normal, Duration::from_secs(1)).await.unwrap();
    // The timer task holds the tick it clones from: it lets go once it finds the process gone.
    let alive = {
        let weak = std::sync::Arc::downgrade(&alive);
        drop(alive);
        weak
    };
    within(async {
        while alive.strong_count() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_continuation_runs_after_init_before_any_message() {
    let runtime = Runtime::new();
    let (server, mut seen) = ticker(true);
    let server = runtime.start(server).await.unwrap();
    server.cast("first".into());
    assert_eq!(within(seen.recv()).await.as_deref(), Some("continue after init"));
    assert_eq!(within(seen.recv()).await.as_deref(), Some("cast first"));
}

#[tokio::test]
async fn a_continuation_runs_after_its_callback_before_the_next_message() {
    let runtime = Runtime::new();
    let (server, mut seen) = ticker(false);
    let server = runtime.start(server).await.unwrap();
    // Both casts are queued before the first is handled: the continuation still goes between them.
    server.cast("continue".into());
    server.cast("next".into());
    assert_eq!(within(seen.recv()).await.as_deref(), Some("cast continue"));
    assert_eq!(within(seen.recv()).await.as_deref(), Some("continue after cast"));
    assert_eq!(within(seen.recv()).await.as_deref(), Some("cast next"));
}

#[tokio::test]
async fn a_panic_in_a_continuation_crashes_the_process() {
    let runtime = Runtime::new();
    let (server, _seen) = ticker(false);
    let server = runtime.start(server).await.unwrap();
    let down = runtime.monitor(server.pid());
    server.call(Op::PanicInContinue).await.unwrap();
    let down = within(down).await;
    assert!(matches!(down.reason, ExitReason::Error(ref text) if text.contains("continuation failed")), "{down:?}");
}

#[tokio::test]
async fn a_message_sent_to_self_comes_behind_what_is_queued() {
    let runtime = Runtime::new();
    let (server, mut seen) = ticker(false);
    let server = runtime.start(server).await.unwrap();
    server.cast("self".into());
    server.cast("queued".into());
    assert_eq!(within(seen.recv()).await.as_deref(), Some("cast self"));
    assert_eq!(within(seen.recv()).await.as_deref(), Some("cast queued"));
    assert_eq!(within(seen.recv()).await.as_deref(), Some("once"));
}

/// Loops through continuations for a while.
struct Busy {
    until: std::time::Instant,
}

impl GenServer for Busy {
    type Call = ();
    type Reply = ();
    type Cast = ();

    async fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        ctx.continue_with(());
        Ok(())
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) {}

    async fn handle_continue(&mut self, _msg: LocalMessage, ctx: &mut Context<Self>) {
        // A chunk of work per continuation, as a loop of `continue_with` is meant to be used.
        if std::time::Instant::now() < self.until {
            ctx.continue_with(());
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_continuations_lets_the_other_tasks_of_its_worker_run() {
    let runtime = Runtime::new();
    let started = std::time::Instant::now();
    let _busy = runtime.start(Busy { until: std::time::Instant::now() + Duration::from_millis(500) }).await.unwrap();
    let waited = started.elapsed();
    // `start` resolves once `init` has replied; the caller's task runs again only when the process yields.
    assert!(waited < Duration::from_millis(100), "the worker was held for {waited:?} by continuations");
}
