//! Deferred replies to callers on another node: answered late, or failed at once when the handle is dropped.

use std::collections::VecDeque;
use std::time::Duration;

use noex_core::{CallError, Context, GenServer, ReplyHandle, StartOptions};
use noex_tests::remote::{mesh, within};

/// A job queue: a call takes a job (waiting for one), a cast `n > 0` puts job `n`, a cast `0` drops the oldest
/// waiting taker's handle.
#[derive(Default)]
struct Jobs {
    jobs: VecDeque<u64>,
    takers: VecDeque<ReplyHandle<u64>>,
}

impl GenServer for Jobs {
    type Call = u32; // 0: take; 1: how many takers wait
    type Reply = u64;
    type Cast = u64;

    async fn handle_call(&mut self, op: u32, ctx: &mut Context<Self>) -> u64 {
        if op == 1 {
            return self.takers.len() as u64;
        }
        match self.jobs.pop_front() {
            Some(job) => job,
            None => {
                let taker = ctx.reply_later().expect("in handle_call");
                assert!(taker.is_remote(), "the taker calls from the other node");
                self.takers.push_back(taker);
                0
            }
        }
    }

    async fn handle_cast(&mut self, job: u64, _ctx: &mut Context<Self>) {
        match (job, self.takers.pop_front()) {
            (0, taker) => drop(taker),
            (job, Some(taker)) => taker.reply(job),
            (job, None) => self.jobs.push_back(job),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_caller_gets_a_deferred_reply_or_a_typed_error_when_it_is_dropped() {
    let nodes = mesh(2).await;
    let local = nodes[1].runtime().start_encodable(Jobs::default(), StartOptions::default()).await.unwrap();
    let jobs = nodes[0].runtime().remote_ref::<Jobs>(local.pid());
    assert!(jobs.is_remote());

    let take = || {
        let jobs = jobs.clone();
        tokio::spawn(async move { jobs.call_timeout(0, Duration::from_secs(10)).await })
    };
    let wait_takers = |count: u64| {
        let local = local.clone();
        async move {
            while local.call(1).await != Ok(count) {
                tokio::task::yield_now().await;
            }
        }
    };

    let first = take();
    within("the first taker to wait", wait_takers(1)).await;
    local.cast(9);
    assert_eq!(within("the deferred reply", first).await.unwrap(), Ok(9));

    let second = take();
    within("the second taker to wait", wait_takers(1)).await;
    local.cast(0);
    // Answered at once (the call's timeout is 10 s): the handle's drop travels as a typed error.
    let dropped = tokio::time::timeout(Duration::from_secs(2), second).await.expect("answered at once").unwrap();
    assert_eq!(dropped, Err(CallError::ReplyDropped));
}
