//! The encoded-message seam: delivering bytes to a process whose types are prost messages.

use bytes::Bytes;
use noex_core::{
    Context, DeliverError, Encodable, EncodedMessage, EncodedReply, ExitReason, GenServer, Runtime, StartOptions,
    Target,
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

impl GenServer for Adder {
    type Call = Add;
    type Reply = Total;
    type Cast = Add;

    async fn handle_call(&mut self, add: Add, _ctx: &mut Context<Self>) -> Total {
        self.0 += add.by;
        Total { value: self.0 }
    }

    async fn handle_cast(&mut self, add: Add, _ctx: &mut Context<Self>) {
        self.0 += add.by;
    }
}

struct ReplySlot(oneshot::Sender<Result<Bytes, ExitReason>>);

impl EncodedReply for ReplySlot {
    fn reply(self: Box<Self>, result: Result<Bytes, ExitReason>) {
        let _ = self.0.send(result);
    }
}

fn encoded_call(by: i64) -> (EncodedMessage, oneshot::Receiver<Result<Bytes, ExitReason>>) {
    let (tx, rx) = oneshot::channel();
    (EncodedMessage::Call { payload: Add { by }.encode_wire(), reply: Box::new(ReplySlot(tx)) }, rx)
}

#[tokio::test]
async fn encoded_calls_and_casts_reach_a_process_by_name_in_order() {
    let runtime = Runtime::new();
    let local = runtime.start_encodable(Adder(0), StartOptions::named("adder")).await.unwrap();
    runtime
        .deliver_encoded(Target::Name("adder"), EncodedMessage::Cast { payload: Add { by: 2 }.encode_to_vec().into() })
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
    let garbage = EncodedMessage::Cast { payload: Bytes::from_static(&[0xff, 0xff, 0xff]) };
    assert!(matches!(runtime.deliver_encoded(Target::Name("adder"), garbage), Err(DeliverError::Decode(_))));
    let (call, _) = encoded_call(1);
    assert_eq!(runtime.deliver_encoded(Target::Name("nobody"), call), Err(DeliverError::NoProc));
    let (call, _) = encoded_call(1);
    assert_eq!(runtime.deliver_encoded(Target::Pid(plain.pid()), call), Err(DeliverError::NotEncodable));
}
