//! Deferred replies: a call answered after `handle_call` returned, by the server or by another process.

use std::collections::VecDeque;
use std::time::Duration;

use noex_core::{CallError, Context, ExitReason, GenServer, ReplyHandle, Runtime};

use crate::support::within;

/// A queue whose `Take` waits for a job; `Drop` throws the oldest waiter's handle away, `Hand` gives it to a
/// helper process that answers it.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<u64>,
    waiting: VecDeque<ReplyHandle<u64>>,
}

enum Op {
    Take,
    Put(u64),
    DropWaiter,
    HandTo(noex_core::ServerRef<Answerer>),
    /// Takes the handle twice: the second must be `None`.
    TakeTwice,
    /// How many takers wait.
    Waiting,
    Crash,
}

impl GenServer for Queue {
    type Call = Op;
    type Reply = u64;
    type Cast = Op;

    async fn handle_call(&mut self, op: Op, ctx: &mut Context<Self>) -> u64 {
        match op {
            Op::Take => match self.jobs.pop_front() {
                Some(job) => job,
                None => {
                    self.waiting.extend(ctx.reply_later());
                    0
                }
            },
            Op::TakeTwice => {
                let first = ctx.reply_later();
                assert!(ctx.reply_later().is_none(), "the handle was taken");
                first.expect("inside handle_call").reply(7);
                99
            }
            Op::Waiting => self.waiting.len() as u64,
            _ => u64::MAX,
        }
    }

    async fn handle_cast(&mut self, op: Op, ctx: &mut Context<Self>) {
        assert!(ctx.reply_later().is_none(), "no call is being handled in a cast");
        match op {
            Op::Put(job) => match self.waiting.pop_front() {
                Some(taker) => taker.reply(job),
                None => self.jobs.push_back(job),
            },
            Op::DropWaiter => drop(self.waiting.pop_front()),
            Op::HandTo(answerer) => {
                if let Some(handle) = self.waiting.pop_front() {
                    answerer.cast(handle);
                }
            }
            Op::Crash => panic!("queue crashed"),
            Op::Take | Op::TakeTwice | Op::Waiting => {}
        }
    }
}

/// Answers every handle it is given with 42.
struct Answerer;

impl GenServer for Answerer {
    type Call = ();
    type Reply = ();
    type Cast = ReplyHandle<u64>;

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) {}

    async fn handle_cast(&mut self, handle: ReplyHandle<u64>, _ctx: &mut Context<Self>) {
        handle.reply(42);
    }
}

/// Starts a `Take` call and waits until the queue holds its handle.
async fn waiting_take(queue: &noex_core::ServerRef<Queue>) -> tokio::task::JoinHandle<Result<u64, CallError>> {
    let taker = tokio::spawn({
        let queue = queue.clone();
        async move { queue.call_timeout(Op::Take, Duration::from_secs(5)).await }
    });
    within(async {
        while queue.call(Op::Waiting).await != Ok(1) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    taker
}

#[tokio::test]
async fn a_deferred_call_is_answered_when_the_server_replies_later() {
    let runtime = Runtime::new();
    let queue = runtime.start(Queue::default()).await.unwrap();
    let taker = waiting_take(&queue).await;
    assert!(!taker.is_finished(), "no job yet: the caller waits");
    queue.cast(Op::Put(5));
    assert_eq!(within(taker).await.unwrap(), Ok(5));
    // The value handle_call returned (0) went nowhere: the next take gets the next job, not a stale reply.
    queue.cast(Op::Put(6));
    assert_eq!(queue.call(Op::Take).await, Ok(6));
}

#[tokio::test]
async fn a_reply_handle_taken_twice_is_none_the_second_time() {
    let runtime = Runtime::new();
    let queue = runtime.start(Queue::default()).await.unwrap();
    assert_eq!(queue.call(Op::TakeTwice).await, Ok(7), "the handle's reply wins over the returned value");
    assert_eq!(queue.call(Op::Waiting).await, Ok(0));
}

#[tokio::test]
async fn another_process_can_answer_a_handle() {
    let runtime = Runtime::new();
    let queue = runtime.start(Queue::default()).await.unwrap();
    let answerer = runtime.start(Answerer).await.unwrap();
    let taker = waiting_take(&queue).await;
    queue.cast(Op::HandTo(answerer));
    assert_eq!(within(taker).await.unwrap(), Ok(42));
}

#[tokio::test]
async fn a_dropped_handle_fails_the_call_at_once() {
    let runtime = Runtime::new();
    let queue = runtime.start(Queue::default()).await.unwrap();
    let taker = waiting_take(&queue).await;
    queue.cast(Op::DropWaiter);
    // Well within the call's 5 s timeout: the drop answers the caller.
    let result = tokio::time::timeout(Duration::from_secs(1), taker).await.expect("answered at once").unwrap();
    assert_eq!(result, Err(CallError::ReplyDropped));
}

#[tokio::test]
async fn a_handle_held_by_a_server_that_crashes_fails_the_call() {
    let runtime = Runtime::new();
    let queue = runtime.start(Queue::default()).await.unwrap();
    let taker = waiting_take(&queue).await;
    queue.cast(Op::Crash);
    // The handle was dropped with the server's state: the caller learns at once, not at its timeout.
    let result = tokio::time::timeout(Duration::from_secs(1), taker).await.expect("answered at once").unwrap();
    assert_eq!(result, Err(CallError::ReplyDropped));
}

#[tokio::test]
async fn a_late_reply_after_the_callers_timeout_is_dropped_and_the_server_lives_on() {
    let runtime = Runtime::new();
    let queue = runtime.start(Queue::default()).await.unwrap();
    assert_eq!(
        queue.call_timeout(Op::Take, Duration::from_millis(50)).await,
        Err(CallError::Timeout(Duration::from_millis(50)))
    );
    queue.cast(Op::Put(1)); // answers the timed-out caller's handle: dropped
    queue.cast(Op::Put(2));
    assert_eq!(queue.call(Op::Take).await, Ok(2));
    queue.stop(ExitReason::Normal, Duration::from_secs(1)).await.unwrap();
}
