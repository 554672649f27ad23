//! Requests with their own reply types, through `requests!`, `Handle` and `ServerRef::request`.

use noex_core::{CallError, Context, GenServer, Handle, Runtime};

#[derive(Debug)]
pub(crate) struct Len;
#[derive(Debug)]
pub(crate) struct Push(pub(crate) String);
#[derive(Debug)]
pub(crate) struct Last;

noex_core::requests! {
    #[derive(Debug)]
    pub(crate) enum ListCall -> ListReply {
        Len(Len) -> usize,
        Push(Push) -> (),
        /// Answered wrongly on purpose by `Sloppy`.
        Last(Last) -> Option<String>,
    }
}

/// Answers through `dispatch`: each request can only get its own reply type.
#[derive(Default)]
struct List(Vec<String>);

impl GenServer for List {
    type Call = ListCall;
    type Reply = ListReply;
    type Cast = ();

    async fn handle_call(&mut self, call: ListCall, ctx: &mut Context<Self>) -> ListReply {
        call.dispatch(self, ctx).await
    }
}

impl Handle<Len> for List {
    async fn handle(&mut self, _: Len, _ctx: &mut Context<Self>) -> usize {
        self.0.len()
    }
}

impl Handle<Push> for List {
    async fn handle(&mut self, Push(item): Push, _ctx: &mut Context<Self>) {
        self.0.push(item);
    }
}

impl Handle<Last> for List {
    async fn handle(&mut self, _: Last, _ctx: &mut Context<Self>) -> Option<String> {
        self.0.last().cloned()
    }
}

/// Answers with a `match`, and gets `Last` wrong.
struct Sloppy;

impl GenServer for Sloppy {
    type Call = ListCall;
    type Reply = ListReply;
    type Cast = ();

    async fn handle_call(&mut self, call: ListCall, _ctx: &mut Context<Self>) -> ListReply {
        match call {
            ListCall::Len(Len) => ListReply::Len(0),
            ListCall::Push(_) => ListReply::Push(()),
            ListCall::Last(Last) => ListReply::Len(0),
        }
    }
}

#[tokio::test]
async fn each_request_gets_its_own_reply_type() {
    let runtime = Runtime::new();
    let list = runtime.start(List::default()).await.unwrap();
    assert_eq!(list.request(Last).await, Ok(None));
    list.request(Push("a".into())).await.unwrap();
    list.request(Push("b".into())).await.unwrap();
    let len: usize = list.request(Len).await.unwrap();
    assert_eq!(len, 2);
    assert_eq!(list.request(Last).await, Ok(Some("b".to_string())));
    // The plain call still works, with the enums.
    assert!(matches!(list.call(ListCall::Len(Len)).await, Ok(ListReply::Len(2))));
}

#[tokio::test]
async fn a_reply_of_another_request_is_a_typed_error() {
    let runtime = Runtime::new();
    let sloppy = runtime.start(Sloppy).await.unwrap();
    assert_eq!(sloppy.request(Len).await, Ok(0));
    match sloppy.request(Last).await {
        Err(CallError::UnexpectedReply(request)) => assert!(request.ends_with("Last"), "{request}"),
        other => panic!("expected UnexpectedReply, got {other:?}"),
    }
}
