//! Calls and casts between two nodes whose messages are plain Rust enums, encoded by noex-core's serde codec.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use noex_core::{CallError, Context, Encodable, GenServer, Handle, Serde};
use noex_tests::remote::mesh;
use serde::{Deserialize, Serialize};

/// A key-value store whose messages are serde types.
#[derive(Default)]
struct Kv(BTreeMap<String, Vec<u8>>);

#[derive(Debug, Serialize, Deserialize)]
enum KvCall {
    Get { key: String },
    Keys,
}

#[derive(Debug, Serialize, Deserialize)]
enum KvCast {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum KvReply {
    Value(Option<Vec<u8>>),
    Keys(Vec<String>),
}

noex_core::serde_encodable!(KvCall, KvCast, KvReply);

impl GenServer for Kv {
    type Call = KvCall;
    type Reply = KvReply;
    type Cast = KvCast;

    async fn handle_call(&mut self, call: KvCall, _ctx: &mut Context<Self>) -> KvReply {
        match call {
            KvCall::Get { key } => KvReply::Value(self.0.get(&key).cloned()),
            KvCall::Keys => KvReply::Keys(self.0.keys().cloned().collect()),
        }
    }

    async fn handle_cast(&mut self, cast: KvCast, _ctx: &mut Context<Self>) {
        match cast {
            KvCast::Put { key, value } => drop(self.0.insert(key, value)),
            KvCast::Delete { key } => drop(self.0.remove(&key)),
        }
    }
}

/// Bytes sent as they are: what a hostile or mistaken peer could put in a payload.
struct Raw(&'static [u8]);

impl Encodable for Raw {
    fn encode_wire(&self) -> Bytes {
        Bytes::from_static(self.0)
    }

    fn decode_wire(bytes: Bytes) -> Result<Self, String> {
        Err(format!("{} bytes: a raw payload is only sent", bytes.len()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serde_messages_cross_between_nodes_in_order() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let local = b.runtime().start_encodable(Kv::default(), Default::default()).await.unwrap();
    let kv = a.runtime().remote_ref::<Kv>(local.pid());
    assert!(kv.is_remote());

    for i in 0..100u8 {
        kv.cast(KvCast::Put { key: format!("k{i:03}"), value: vec![i; usize::from(i)] });
    }
    kv.cast(KvCast::Delete { key: "k000".into() });
    assert_eq!(kv.call(KvCall::Get { key: "k099".into() }).await, Ok(KvReply::Value(Some(vec![99; 99]))));
    let Ok(KvReply::Keys(keys)) = kv.call(KvCall::Keys).await else { panic!("keys") };
    assert_eq!(keys.len(), 99, "every cast was applied before the call, in order");
    assert_eq!(keys.first().map(String::as_str), Some("k001"));
    assert_eq!(kv.call(KvCall::Get { key: "k000".into() }).await, Ok(KvReply::Value(None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_payloads_fail_the_call_with_a_decode_error_and_leave_the_server_working() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let local = b.runtime().start_encodable(Kv::default(), Default::default()).await.unwrap();
    b.runtime().register("kv", local.pid()).unwrap();
    let second = Duration::from_secs(1);

    let hostile: [&'static [u8]; 4] = [
        &[7],                                                       // no such variant
        &[0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], // a key of 2^63 bytes
        &[0, 2, 0xC3, 0x28],                                        // a key that is not UTF-8
        &[1, 0],                                                    // a byte after a whole message
    ];
    for bytes in hostile {
        let result = a.remote().call_named::<Raw, KvReply>(b.id(), "kv", &Raw(bytes), second).await;
        assert!(matches!(result, Err(CallError::Decode(_))), "{bytes:?} gave {result:?}");
        a.remote().cast_named(b.id(), "kv", &Raw(bytes));
    }
    // A peer that means well but sends another type (a prost message) is refused the same way.
    let prost = a.remote().call_named::<String, KvReply>(b.id(), "kv", &"k".to_string(), second).await;
    assert!(matches!(prost, Err(CallError::Decode(_))), "{prost:?}");

    let kv = a.runtime().remote_ref::<Kv>(local.pid());
    kv.cast(KvCast::Put { key: "k".into(), value: vec![1] });
    assert_eq!(kv.call(KvCall::Keys).await, Ok(KvReply::Keys(vec!["k".into()])), "the server lives on");
}

#[derive(Debug, Serialize, Deserialize)]
struct Get(String);

#[derive(Debug, Serialize, Deserialize)]
struct Put(String, u64);

noex_core::requests! {
    #[derive(Debug, Serialize, Deserialize)]
    enum StoreCall -> StoreReply {
        Get(Get) -> Option<u64>,
        Put(Put) -> bool,
    }
}

noex_core::serde_encodable!(StoreCall, StoreReply);

/// A store whose requests are declared with `requests!` and whose casts are a type of another crate.
#[derive(Default)]
struct Store(BTreeMap<String, u64>);

impl GenServer for Store {
    type Call = StoreCall;
    type Reply = StoreReply;
    type Cast = Serde<Vec<(String, u64)>>;

    async fn handle_call(&mut self, call: StoreCall, ctx: &mut Context<Self>) -> StoreReply {
        call.dispatch(self, ctx).await
    }

    async fn handle_cast(&mut self, entries: Self::Cast, _ctx: &mut Context<Self>) {
        self.0.extend(entries.into_inner());
    }
}

impl Handle<Get> for Store {
    async fn handle(&mut self, Get(key): Get, _ctx: &mut Context<Self>) -> Option<u64> {
        self.0.get(&key).copied()
    }
}

impl Handle<Put> for Store {
    async fn handle(&mut self, Put(key, value): Put, _ctx: &mut Context<Self>) -> bool {
        self.0.insert(key, value).is_none()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_serde_derives_and_wrapped_foreign_types_cross_between_nodes() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let local = b.runtime().start_encodable(Store::default(), Default::default()).await.unwrap();
    let store = a.runtime().remote_ref::<Store>(local.pid());

    assert_eq!(store.request(Put("a".into(), 1)).await, Ok(true));
    assert_eq!(store.request(Put("a".into(), 2)).await, Ok(false));
    store.cast(Serde(vec![("b".into(), 3), ("c".into(), 4)]));
    assert_eq!(store.request(Get("a".into())).await, Ok(Some(2)));
    assert_eq!(store.request(Get("c".into())).await, Ok(Some(4)), "the cast came first");
    assert_eq!(store.request(Get("z".into())).await, Ok(None));
}
