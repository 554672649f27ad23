//! The seam for distribution: delivering an *encoded* call or cast to a local process without knowing its type.
//!
//! A server whose message types are [`Encodable`] (any prost message, and `()`) can be started with
//! [`Runtime::start_encodable`]. The runtime then keeps, next to the process, a function that decodes a payload
//! into the server's `Call`/`Cast` type and encodes its `Reply`. A transport layer hands bytes to
//! [`Runtime::deliver_encoded`] and gets the encoded reply through an [`EncodedReply`]. Local sends never take
//! this path: they move the typed value into the mailbox.

use bytes::Bytes;

use crate::process::{Envelope, ReplyTo, ServerCell};
use crate::runtime::Spawn;
use crate::{DeliverError, GenServer, Pid, Runtime, ServerRef, StartError, StartOptions, Unanswered};

/// A message type that can cross the wire. Implemented for every prost message (and so for `()`).
pub trait Encodable: Sized + Send + 'static {
    /// The message as bytes.
    fn encode_wire(&self) -> Bytes;
    /// The message from bytes; an error describes what was wrong.
    fn decode_wire(bytes: Bytes) -> Result<Self, String>;
    /// The message from bytes it does not keep (a slice of a connection's read buffer).
    fn decode_wire_slice(bytes: &[u8]) -> Result<Self, String> {
        Self::decode_wire(Bytes::copy_from_slice(bytes))
    }
    /// How many bytes [`encode_wire_into`](Self::encode_wire_into) writes.
    fn wire_len(&self) -> usize {
        self.encode_wire().len()
    }
    /// Writes the message into `dst`, exactly [`wire_len`](Self::wire_len) bytes long: how a cast is encoded
    /// straight into a connection's buffer, without a buffer of its own.
    fn encode_wire_into(&self, dst: &mut [u8]) {
        dst.copy_from_slice(&self.encode_wire());
    }
}

impl<T: prost::Message + Default + 'static> Encodable for T {
    fn encode_wire(&self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }

    fn decode_wire(bytes: Bytes) -> Result<Self, String> {
        T::decode(bytes).map_err(|error| error.to_string())
    }

    fn decode_wire_slice(bytes: &[u8]) -> Result<Self, String> {
        T::decode(bytes).map_err(|error| error.to_string())
    }

    fn wire_len(&self) -> usize {
        self.encoded_len()
    }

    fn encode_wire_into(&self, mut dst: &mut [u8]) {
        self.encode_raw(&mut dst);
    }
}

/// A message written where it is needed (in a frame, in a connection's buffer) instead of into a buffer of its
/// own: what [`Distribution::cast`](crate::Distribution::cast) is handed.
pub trait WirePayload {
    /// Its size in bytes.
    fn wire_len(&self) -> usize;
    /// Writes it into `dst`, exactly [`wire_len`](Self::wire_len) bytes long.
    fn write(&self, dst: &mut [u8]);
}

/// A typed message as a [`WirePayload`].
pub(crate) struct Typed<'a, M> {
    pub(crate) msg: &'a M,
    pub(crate) len: fn(&M) -> usize,
    pub(crate) write: fn(&M, &mut [u8]),
}

impl<M> WirePayload for Typed<'_, M> {
    fn wire_len(&self) -> usize {
        (self.len)(self.msg)
    }

    fn write(&self, dst: &mut [u8]) {
        (self.write)(self.msg, dst)
    }
}

/// An encoded message for a local process.
pub enum EncodedMessage {
    /// A call: the reply (or the reason the process ended first) goes to `reply`.
    Call {
        /// The encoded `Call` value.
        payload: Bytes,
        /// Where the encoded reply goes.
        reply: Box<dyn EncodedReply>,
    },
    /// A cast.
    Cast {
        /// The encoded `Cast` value.
        payload: Bytes,
        /// Given back once the process has handled the cast (or it is dropped): flow control of the
        /// connection it came on. `None` for a cast that no connection carried.
        receipt: Option<crate::Receipt>,
    },
}

/// Receives the encoded reply to an [`EncodedMessage::Call`]; called exactly once if the call was accepted.
pub trait EncodedReply: Send + 'static {
    /// The encoded reply, or why there is none.
    fn reply(self: Box<Self>, result: Result<Bytes, Unanswered>);
}

/// Names a local process: by pid or by registered name.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// By pid.
    Pid(&'a Pid),
    /// By local registered name.
    Name(&'a str),
}

/// A cast whose payload is a slice of a connection's read buffer (the remote cast hot path).
type CastDelivery<S> = fn(&ServerCell<S>, &[u8], Option<crate::Receipt>) -> Result<(), DeliverError>;

/// How a process started with encodable types takes encoded messages: monomorphised for its server type.
pub(crate) struct EncodedDelivery<S: GenServer> {
    pub(crate) message: fn(&ServerCell<S>, EncodedMessage) -> Result<(), DeliverError>,
    pub(crate) cast: CastDelivery<S>,
}

impl<S: GenServer> Clone for EncodedDelivery<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: GenServer> Copy for EncodedDelivery<S> {}

impl Runtime {
    /// Starts a server whose messages are [`Encodable`], so that it can also be reached through
    /// [`deliver_encoded`](Self::deliver_encoded). Local references to it behave exactly as with `start_with`.
    pub async fn start_encodable<S>(&self, server: S, options: StartOptions) -> Result<ServerRef<S>, StartError>
    where
        S: GenServer,
        S::Call: Encodable,
        S::Cast: Encodable,
        S::Reply: Encodable,
    {
        let mut spawn = Spawn::new(options);
        spawn.encoded = Some(delivery::<S>());
        self.start_spawn(server, spawn).await
    }

    /// Delivers an encoded call or cast to a local process, in order with everything else sent to it.
    pub fn deliver_encoded(&self, target: Target<'_>, message: EncodedMessage) -> Result<(), DeliverError> {
        let named;
        let pid = match target {
            Target::Pid(pid) => pid,
            Target::Name(name) => {
                named = self.whereis(name).ok_or(DeliverError::NoProc)?;
                &named
            }
        };
        self.cell(pid).ok_or(DeliverError::NoProc)?.deliver_encoded(message)
    }

    /// Delivers a cast to the local process numbered `id` of incarnation `creation` (the caller has checked that
    /// the pid names this node), its payload read from `payload` without keeping it: the remote cast hot path,
    /// which builds no `Pid` and keeps no slice of the read buffer. `receipt` goes into the mailbox with it.
    pub fn deliver_cast_slice(
        &self,
        creation: u32,
        id: u64,
        payload: &[u8],
        receipt: Option<crate::Receipt>,
    ) -> Result<(), DeliverError> {
        let cell = self.cell_by_id(creation, id).ok_or(DeliverError::NoProc)?;
        cell.deliver_cast_slice(payload, receipt)
    }
}

/// How a server with encodable types takes encoded messages.
pub(crate) fn delivery<S>() -> EncodedDelivery<S>
where
    S: GenServer,
    S::Call: Encodable,
    S::Cast: Encodable,
    S::Reply: Encodable,
{
    EncodedDelivery { message: deliver::<S>, cast: deliver_cast::<S> }
}

fn deliver<S>(cell: &ServerCell<S>, message: EncodedMessage) -> Result<(), DeliverError>
where
    S: GenServer,
    S::Call: Encodable,
    S::Cast: Encodable,
    S::Reply: Encodable,
{
    let envelope = match message {
        EncodedMessage::Call { payload, reply } => {
            let msg = S::Call::decode_wire(payload).map_err(DeliverError::Decode)?;
            let reply = ReplyTo::Encoded(Box::new(move |result: Result<S::Reply, Unanswered>| {
                reply.reply(result.map(|value| value.encode_wire()));
            }));
            Envelope::Call(msg, reply)
        }
        EncodedMessage::Cast { payload, receipt } => {
            Envelope::Cast(S::Cast::decode_wire(payload).map_err(DeliverError::Decode)?, receipt)
        }
    };
    cell.mailbox.push(envelope).map_err(|_| DeliverError::NoProc)
}

fn deliver_cast<S>(cell: &ServerCell<S>, payload: &[u8], receipt: Option<crate::Receipt>) -> Result<(), DeliverError>
where
    S: GenServer,
    S::Cast: Encodable,
{
    let msg = S::Cast::decode_wire_slice(payload).map_err(DeliverError::Decode)?;
    cell.mailbox.push(Envelope::Cast(msg, receipt)).map_err(|_| DeliverError::NoProc)
}
