//! The encoded-message seam: delivering bytes to a process whose types are prost messages.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use noex_core::{
    Context, CreditSink, DeliverError, Encodable, EncodedMessage, EncodedReply, GenServer, Receipt, Runtime,
    StartOptions, Target, Unanswered,
};
use prost::Message;
use tokio::sync::oneshot;

#[derive(Clone, PartialEq, prost::Message)]
struct Add {
    #[prost(int64, tag = "1")]
    by: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Total {
    #[prost(int64, tag = "1")]
    value: i64,
}

struct Adder(i64);

/// A call that keeps the adder busy.
const SLEEP: i64 = -1_000_000;

impl GenServer for Adder {
    type Call = Add;
    type Reply = Total;
    type Cast = Add;

    async fn handle_call(&mut self, add: Add, _ctx: &mut Context<Self>) -> Total {
        if add.by == SLEEP {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        }
        self.0 += add.by;
        Total { value: self.0 }
    }

    async fn handle_cast(&mut self, add: Add, _ctx: &mut Context<Self>) {
        self.0 += add.by;
    }
}

struct ReplySlot(oneshot::Sender<Result<Bytes, Unanswered>>);

impl EncodedReply for ReplySlot {
    fn reply(self: Box<Self>, result: Result<Bytes, Unanswered>) {
        let _ = self.0.send(result);
    }
}

fn encoded_call(by: i64) -> (EncodedMessage, oneshot::Receiver<Result<Bytes, Unanswered>>) {
    let (tx, rx) = oneshot::channel();
    (EncodedMessage::Call { payload: Add { by }.encode_wire(), reply: Box::new(ReplySlot(tx)) }, rx)
}

#[tokio::test]
async fn encoded_calls_and_casts_reach_a_process_by_name_in_order() {
    let runtime = Runtime::new();
    let local = runtime.start_encodable(Adder(0), StartOptions::named("adder")).await.unwrap();
    runtime
        .deliver_encoded(
            Target::Name("adder"),
            EncodedMessage::Cast { payload: Add { by: 2 }.encode_to_vec().into(), receipt: None },
        )
        .unwrap();
    let (call, reply) = encoded_call(3);
    runtime.deliver_encoded(Target::Pid(local.pid()), call).unwrap();
    let bytes = reply.await.unwrap().unwrap();
    assert_eq!(Total::decode(bytes).unwrap(), Total { value: 5 });
    assert_eq!(local.call(Add { by: 0 }).await.unwrap(), Total { value: 5 }, "local refs still work, unencoded");
}

#[tokio::test]
async fn undecodable_unknown_and_unencodable_targets_are_typed_errors() {
    let runtime = Runtime::new();
    runtime.start_encodable(Adder(0), StartOptions::named("adder")).await.unwrap();
    let plain = runtime.start_with(crate::support::Probe::new(), StartOptions::named("plain")).await.unwrap();
    let garbage = EncodedMessage::Cast { payload: Bytes::from_static(&[0xff, 0xff, 0xff]), receipt: None };
    assert!(matches!(runtime.deliver_encoded(Target::Name("adder"), garbage), Err(DeliverError::Decode(_))));
    let (call, _) = encoded_call(1);
    assert_eq!(runtime.deliver_encoded(Target::Name("nobody"), call), Err(DeliverError::NoProc));
    let (call, _) = encoded_call(1);
    assert_eq!(runtime.deliver_encoded(Target::Pid(plain.pid()), call), Err(DeliverError::NotEncodable));
}

#[derive(Default)]
struct Given(AtomicU32);

impl CreditSink for Given {
    fn consumed(&self, cost: u32) {
        self.0.fetch_add(cost, Ordering::Relaxed);
    }
}

fn receipted_cast(by: i64, sink: &Arc<Given>) -> EncodedMessage {
    let receipt = Receipt::new(sink.clone(), 10);
    EncodedMessage::Cast { payload: Add { by }.encode_wire(), receipt: Some(receipt) }
}

#[tokio::test]
async fn a_cast_gives_its_receipt_back_once_handled_or_dropped_never_before() {
    let runtime = Runtime::new();
    let given = Arc::new(Given::default());
    let adder = runtime.start_encodable(Adder(0), StartOptions::named("adder")).await.unwrap();
    for by in [1, 2] {
        runtime.deliver_encoded(Target::Pid(adder.pid()), receipted_cast(by, &given)).unwrap();
    }
    assert_eq!(adder.call(Add { by: 0 }).await.unwrap(), Total { value: 3 });
    assert_eq!(given.0.load(Ordering::Relaxed), 20, "both handled, both given back");

    // Undecodable, and to nobody: given back at once.
    let garbage = EncodedMessage::Cast {
        payload: Bytes::from_static(&[0xff, 0xff, 0xff]),
        receipt: Some(Receipt::new(given.clone(), 10)),
    };
    assert!(runtime.deliver_encoded(Target::Pid(adder.pid()), garbage).is_err());
    assert!(runtime.deliver_encoded(Target::Name("nobody"), receipted_cast(1, &given)).is_err());
    assert_eq!(given.0.load(Ordering::Relaxed), 40);

    // Queued behind a call in progress: not given back until the process is killed with it still queued.
    let (call, reply) = encoded_call(SLEEP);
    runtime.deliver_encoded(Target::Pid(adder.pid()), call).unwrap();
    runtime.deliver_encoded(Target::Pid(adder.pid()), receipted_cast(1, &given)).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(given.0.load(Ordering::Relaxed), 40, "not before it is handled");
    runtime.kill(adder.pid());
    assert!(reply.await.unwrap().is_err());
    assert_eq!(given.0.load(Ordering::Relaxed), 50, "given back with the queue of the killed process");
}
