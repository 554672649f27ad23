//! Requests with their own reply types: a server's `Call` is an enum of requests and its `Reply` an enum of their
//! replies, and [`ServerRef::request`](crate::ServerRef::request) hands each caller its own request's reply type.
//! The [`requests!`](crate::requests) macro writes both enums and the glue.

use std::future::Future;

use crate::{Context, GenServer};

/// One kind of request of a server whose `Call` is an enum of requests ([`Self::Call`]) and whose `Reply` is an
/// enum of replies ([`Self::Replies`]): it knows its variant in both. Written by [`requests!`](crate::requests),
/// or by hand (for prost `oneof` messages, say).
pub trait Request: Send + Sized + 'static {
    /// The enum of requests this one belongs to (the server's `Call`).
    type Call;
    /// The enum of replies (the server's `Reply`).
    type Replies;
    /// What this request is answered with.
    type Reply: Send + 'static;

    /// The request as its variant of the `Call` enum.
    fn into_call(self) -> Self::Call;
    /// The reply as its variant of the `Reply` enum.
    fn wrap_reply(reply: Self::Reply) -> Self::Replies;
    /// The reply out of the `Reply` enum; the enum back if it holds another request's reply.
    fn unwrap_reply(replies: Self::Replies) -> Result<Self::Reply, Self::Replies>;
}

/// Handles one kind of [`Request`]: the typed alternative to a `match` in `handle_call`, one impl per request.
/// The `dispatch` method that [`requests!`](crate::requests) writes on the `Call` enum routes each request to its
/// `handle` and wraps the reply, so a request can only be answered with its own reply type.
pub trait Handle<R: Request>: GenServer {
    /// Answers `request`.
    fn handle(&mut self, request: R, ctx: &mut Context<Self>) -> impl Future<Output = R::Reply> + Send;
}

/// Declares a server's requests with a reply type each: the `Call` enum, the `Reply` enum, a [`Request`] impl per
/// request type, `From` conversions, and a `dispatch` method for servers that implement [`Handle`] for each.
/// Attributes before `enum` (derives, docs) go on both enums: add `serde` derives to send them between nodes
/// (see `serde_encodable!` under the `serde` feature).
///
/// ```
/// use std::collections::HashMap;
/// use noex_core::{Context, GenServer, Handle, Runtime};
///
/// #[derive(Debug)]
/// pub struct Get(pub String);
/// #[derive(Debug)]
/// pub struct Put(pub String, pub String);
///
/// noex_core::requests! {
///     /// What the store answers.
///     #[derive(Debug)]
///     pub enum StoreCall -> StoreReply {
///         Get(Get) -> Option<String>,
///         Put(Put) -> bool,
///     }
/// }
///
/// #[derive(Default)]
/// struct Store(HashMap<String, String>);
///
/// impl GenServer for Store {
///     type Call = StoreCall;
///     type Reply = StoreReply;
///     type Cast = ();
///
///     async fn handle_call(&mut self, call: StoreCall, ctx: &mut Context<Self>) -> StoreReply {
///         call.dispatch(self, ctx).await
///     }
/// }
///
/// impl Handle<Get> for Store {
///     async fn handle(&mut self, Get(key): Get, _ctx: &mut Context<Self>) -> Option<String> {
///         self.0.get(&key).cloned()
///     }
/// }
///
/// impl Handle<Put> for Store {
///     async fn handle(&mut self, Put(key, value): Put, _ctx: &mut Context<Self>) -> bool {
///         self.0.insert(key, value).is_none()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let runtime = Runtime::new();
/// let store = runtime.start(Store::default()).await.unwrap();
/// assert_eq!(store.request(Put("a".into(), "1".into())).await, Ok(true));
/// assert_eq!(store.request(Get("a".into())).await, Ok(Some("1".into())));
/// # }
/// ```
///
/// A `match` works as well, without `Handle`: `StoreCall::Get(Get(key)) => StoreReply::Get(...)`.
#[macro_export]
macro_rules! requests {
    (
        $(#[$attr:meta])*
        $vis:vis enum $call:ident -> $replies:ident {
            $( $(#[$vattr:meta])* $variant:ident($request:ty) -> $reply:ty ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis enum $call {
            $( $(#[$vattr])* $variant($request), )*
        }

        $(#[$attr])*
        $vis enum $replies {
            $( $(#[$vattr])* $variant($reply), )*
        }

        $(
            impl $crate::Request for $request {
                type Call = $call;
                type Replies = $replies;
                type Reply = $reply;

                fn into_call(self) -> $call {
                    $call::$variant(self)
                }

                fn wrap_reply(reply: $reply) -> $replies {
                    $replies::$variant(reply)
                }

                #[allow(unreachable_patterns)]
                fn unwrap_reply(replies: $replies) -> ::core::result::Result<$reply, $replies> {
                    match replies {
                        $replies::$variant(reply) => ::core::result::Result::Ok(reply),
                        other => ::core::result::Result::Err(other),
                    }
                }
            }

            impl ::core::convert::From<$request> for $call {
                fn from(request: $request) -> $call {
                    $call::$variant(request)
                }
            }
        )*

        impl $call {
            /// Hands the request to its [`Handle`]r and wraps the reply in its variant.
            #[allow(dead_code)]
            $vis async fn dispatch<S>(self, server: &mut S, ctx: &mut $crate::Context<S>) -> $replies
            where
                S: $crate::GenServer $( + $crate::Handle<$request> )*,
            {
                match self {
                    $( $call::$variant(request) => {
                        $replies::$variant(<S as $crate::Handle<$request>>::handle(server, request, ctx).await)
                    } )*
                }
            }
        }
    };
}
