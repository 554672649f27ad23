//! Loom models of the mailbox: producers, the consumer, `close` and exit signals racing each other.
//!
//! Run with `RUSTFLAGS="--cfg noex_loom" cargo test -p noex-core --lib --release ::model::` (see
//! docs/architecture.md, "Models"). The consumer waits with `loom::future::block_on`, whose waker unparks its
//! thread: a lost wake-up leaves every thread blocked, which loom reports as a deadlock.

use std::collections::VecDeque;
use std::future::poll_fn;

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;

use super::{Batch, ExitOutcome, Mailbox};
use crate::process::LinkPeer;
use crate::sync::check_model;
use crate::{ExitReason, ExitSignal, NodeName, Pid};

/// A message of the models: a numbered cast, a trapped exit signal, or the end of a test's traffic.
#[derive(Debug, PartialEq)]
enum Msg {
    Cast(u32),
    Exit(ExitSignal),
    Last,
}

/// Waits for the next batch, as the process loop does (`Context::next_batch`).
fn next_batch(mailbox: &Mailbox<Msg>, out: &mut VecDeque<Msg>) -> Batch {
    let batch = block_on(poll_fn(|cx| mailbox.poll_batch(cx, out)));
    if let Batch::Ready = batch {
        assert!(!out.is_empty(), "a ready batch holds at least one message");
    }
    batch
}

/// Pushes each of `numbers` as a cast; returns those refused (handed back).
fn produce(mailbox: &Mailbox<Msg>, numbers: &[u32]) -> Vec<u32> {
    let mut refused = Vec::new();
    for &n in numbers {
        if let Err(msg) = mailbox.push(Msg::Cast(n)) {
            assert_eq!(msg, Msg::Cast(n), "push hands back what it was given");
            refused.push(n);
        }
    }
    refused
}

fn casts(messages: impl IntoIterator<Item = Msg>) -> Vec<u32> {
    messages
        .into_iter()
        .map(|msg| match msg {
            Msg::Cast(n) => n,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// `numbers` as they appear in `seen`, which must keep their order.
fn assert_in_order(seen: &[u32], numbers: &[u32]) {
    let got: Vec<u32> = seen.iter().copied().filter(|n| numbers.contains(n)).collect();
    assert!(got.iter().zip(got.iter().skip(1)).all(|(a, b)| a < b), "one producer's messages out of order: {seen:?}");
}

fn pid(id: u64) -> Pid {
    Pid::new(NodeName::new("model"), 1, id)
}

/// Two producers push while the consumer drains batches and waits in between: every message arrives exactly
/// once and in its producer's order, and a consumer that found the queue empty is always woken.
#[test]
fn producers_wake_the_consumer_and_every_message_arrives_once_in_order() {
    check_model(Some(3), || {
        let mailbox = Arc::new(Mailbox::new());
        let producers: Vec<_> = [vec![1, 2], vec![11]]
            .into_iter()
            .map(|numbers| {
                let mailbox = mailbox.clone();
                thread::spawn(move || assert!(produce(&mailbox, &numbers).is_empty(), "an open mailbox refused"))
            })
            .collect();
        let mut seen = Vec::new();
        let mut out = VecDeque::new();
        while seen.len() < 3 {
            match next_batch(&mailbox, &mut out) {
                Batch::Ready => seen.extend(casts(out.drain(..))),
                Batch::Closed(reason) => panic!("nobody closed the mailbox, yet it says {reason}"),
            }
        }
        producers.into_iter().for_each(|p| p.join().unwrap());
        assert_in_order(&seen, &[1, 2]);
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [1, 2, 11], "each message exactly once");
        assert_eq!(mailbox.enqueued(), 3);
    });
}

/// A producer pushes while a kill closes the mailbox under the waiting consumer, which then closes it again as
/// `Context::drop` does: each message is handled, handed back by `close` or refused to its producer, exactly once
/// and in order; the kill wakes the consumer; the first reason wins.
#[test]
fn a_kill_racing_pushes_loses_nothing_and_wakes_the_consumer() {
    check_model(Some(3), || {
        let mailbox = Arc::new(Mailbox::new());
        let producer = {
            let mailbox = mailbox.clone();
            thread::spawn(move || produce(&mailbox, &[1, 2]))
        };
        let killer = {
            let mailbox = mailbox.clone();
            // `ProcessCell::kill`, less the abort of a task the model does not have.
            thread::spawn(move || assert!(mailbox.lock().close_locked(ExitReason::Killed), "the first close"))
        };
        let mut handled = Vec::new();
        let mut out = VecDeque::new();
        let reason = loop {
            match next_batch(&mailbox, &mut out) {
                Batch::Ready => handled.extend(casts(out.drain(..))),
                Batch::Closed(reason) => break reason,
            }
        };
        assert_eq!(reason, ExitReason::Killed);
        let closed = mailbox.close(ExitReason::Normal);
        assert_eq!(closed.reason, ExitReason::Killed, "the first reason wins");
        killer.join().unwrap();
        let refused = producer.join().unwrap();
        assert!(mailbox.push(Msg::Cast(3)).is_err(), "a closed mailbox refuses");

        let mut all = handled;
        all.extend(casts(closed.queued));
        let accepted = all.len();
        all.extend(&refused);
        assert_eq!(all, [1, 2], "handled, then handed back, then refused: each once, in order");
        assert_eq!(mailbox.enqueued(), accepted as u64);
    });
}

/// A linked process's exit signal races the process turning `trap_exit` on and a third party unlinking and then
/// sending: the signal is queued as an `EXIT` (if trapped), or closes the mailbox and wakes the consumer (if not),
/// or, once the unlink has returned, has no effect at all; never two of these, never after the unlink.
#[test]
fn an_exit_signal_is_decided_atomically_with_trap_exit_and_the_link() {
    check_model(Some(3), || {
        let peer = pid(2);
        let mailbox = Arc::new(Mailbox::new());
        mailbox.lock().links.push((peer.clone(), LinkPeer::Remote));
        let reason = ExitReason::error("boom");

        let signal = {
            let (mailbox, peer, reason) = (mailbox.clone(), peer.clone(), reason.clone());
            thread::spawn(move || mailbox.exit_signal(peer, reason, true, Msg::Exit))
        };
        let unlinker = {
            let (mailbox, peer) = (mailbox.clone(), peer.clone());
            // `ProcessCell::remove_link`, then a message sent after it returned.
            thread::spawn(move || {
                mailbox.lock().links.retain(|(p, _)| *p != peer);
                mailbox.push(Msg::Last).is_ok()
            })
        };

        // The process itself: `Context::trap_exits(true)`, then its loop until the last message or its end.
        mailbox.lock().trap_exit = true;
        let mut exits = Vec::new();
        let mut out = VecDeque::new();
        let ended = 'run: loop {
            match next_batch(&mailbox, &mut out) {
                Batch::Ready => {
                    for msg in out.drain(..) {
                        match msg {
                            Msg::Exit(exit) => exits.push(exit),
                            Msg::Last => break 'run None,
                            Msg::Cast(n) => panic!("unexpected cast {n}"),
                        }
                    }
                }
                Batch::Closed(reason) => break Some(reason),
            }
        };

        let outcome = signal.join().unwrap();
        let last_sent = unlinker.join().unwrap();
        assert!(mailbox.lock().links.is_empty(), "the signal or the unlink took the link");
        match outcome {
            ExitOutcome::Queued => {
                assert_eq!(exits, [ExitSignal { from: peer, reason }], "one EXIT, before the later message");
                assert!(last_sent && ended.is_none());
            }
            ExitOutcome::Closed => {
                assert_eq!(ended, Some(reason), "the consumer hears of its end");
                assert!(exits.is_empty() && !last_sent, "closed before the unlink, so before the later message");
            }
            ExitOutcome::Ignored => {
                assert!(exits.is_empty() && last_sent && ended.is_none(), "no effect after the unlink");
            }
        }
    });
}
