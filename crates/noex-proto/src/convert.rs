//! Between the hand-written [`Frame`] and the generated `Envelope`: every field validated on the way in (a
//! malformed one is `ProtoError::Invalid` naming it), node names interned per connection.

use std::time::Duration;

use noex_core::{ExitReason, NodeName, Pid, Restart};

use crate::frame::*;
use crate::wire::{self, envelope::Body};
use crate::{NodeId, ProtoError};

impl TryFrom<wire::Envelope> for Frame {
    type Error = ProtoError;

    fn try_from(envelope: wire::Envelope) -> Result<Self, ProtoError> {
        Frame::from_wire(envelope, &mut NodeNames::default())
    }
}

impl Frame {
    /// Converts a decoded envelope, validating every field; `names` spares re-validating the node names that
    /// recur in pids.
    pub(crate) fn from_wire(envelope: wire::Envelope, names: &mut NodeNames) -> Result<Self, ProtoError> {
        let body = envelope.body.ok_or(ProtoError::UnknownKind)?;
        Ok(match body {
            Body::Hello(h) => Frame::Hello(Hello {
                version: h.protocol_version,
                node: node_id(&h.node_id, "hello.node_id")?,
                creation: creation(h.creation, "hello.creation")?,
                nonce: h.nonce,
            }),
            Body::Challenge(c) => Frame::Challenge(Challenge {
                version: c.protocol_version,
                node: node_id(&c.node_id, "challenge.node_id")?,
                creation: creation(c.creation, "challenge.creation")?,
                nonce: c.nonce,
            }),
            Body::Proof(p) => Frame::Proof(proof(p.proof, "proof.proof")?),
            Body::Welcome(w) => Frame::Welcome { proof: proof(w.proof, "welcome.proof")? },
            Body::Reject(r) => Frame::Reject(match wire::RejectReason::try_from(r.reason) {
                Ok(wire::RejectReason::Duplicate) => RejectReason::Duplicate,
                _ => RejectReason::NotAllowed,
            }),
            Body::Heartbeat(_) => Frame::Heartbeat,
            Body::Members(m) => Frame::Members(
                m.members
                    .into_iter()
                    .map(|m| Ok(Member { node: node_id(&m.node_id, "members.node_id")?, creation: m.creation }))
                    .collect::<Result<_, ProtoError>>()?,
            ),
            Body::Goodbye(_) => Frame::Goodbye,
            Body::CastCredit(c) => Frame::CastCredit { consumed: c.consumed, window: c.window },
            Body::Call(c) => Frame::Call(Call {
                call_id: c.call_id,
                target: names.target(c.target, "call.target")?,
                from: names.pid(c.from, "call.from")?,
                payload: c.payload,
                timeout: Duration::from_millis(c.timeout_ms.into()),
            }),
            Body::Reply(r) => Frame::Reply(Reply {
                call_id: r.call_id,
                result: match r.result.ok_or(ProtoError::missing("reply.result"))? {
                    wire::reply::Result::Payload(payload) => Ok(payload),
                    wire::reply::Result::Error(e) => Err(call_failure(e)?),
                },
            }),
            Body::Cast(c) => Frame::Cast(Cast {
                target: names.target(c.target, "cast.target")?,
                from: names.pid(c.from, "cast.from")?,
                payload: c.payload,
            }),
            Body::SpawnRequest(s) => Frame::SpawnRequest(SpawnRequest {
                spawn_id: s.spawn_id,
                behaviour: s.behaviour,
                init_args: s.init_args,
                name: Some(s.name).filter(|name| !name.is_empty()),
                registration: match wire::Registration::try_from(s.registration) {
                    Ok(wire::Registration::None) => Registration::None,
                    Ok(wire::Registration::Local) => Registration::Local,
                    Ok(wire::Registration::Global) => Registration::Global,
                    Err(_) => return Err(ProtoError::invalid("spawn_request.registration", "unknown value")),
                },
                timeout: Duration::from_millis(s.timeout_ms.into()),
                from: names.pid(s.from, "spawn_request.from")?,
                bonds: spawn_bonds(names, s.link, s.supervisor, s.restart)?,
            }),
            Body::SpawnReply(s) => Frame::SpawnReply(SpawnReply {
                spawn_id: s.spawn_id,
                result: match s.result.ok_or(ProtoError::missing("spawn_reply.result"))? {
                    wire::spawn_reply::Result::Pid(p) => Ok(names.pid(Some(p), "spawn_reply.pid")?),
                    wire::spawn_reply::Result::Error(e) => Err(spawn_failure(e)?),
                },
            }),
            Body::Monitor(m) => Frame::Monitor(Monitor {
                monitor_id: m.monitor_id,
                watcher: names.pid(m.watcher, "monitor.watcher")?,
                target: names.target(m.target, "monitor.target")?,
            }),
            Body::Demonitor(d) => Frame::Demonitor(Demonitor {
                monitor_id: d.monitor_id,
                watcher: names.pid(d.watcher, "demonitor.watcher")?,
            }),
            Body::Down(d) => Frame::Down(Down {
                monitor_id: d.monitor_id,
                watcher: names.pid(d.watcher, "down.watcher")?,
                pid: names.pid(d.pid, "down.pid")?,
                reason: exit_reason(d.reason, "down.reason")?,
            }),
            Body::Link(l) => {
                Frame::Link(LinkPair { from: names.pid(l.from, "link.from")?, to: names.pid(l.to, "link.to")? })
            }
            Body::Unlink(l) => {
                Frame::Unlink(LinkPair { from: names.pid(l.from, "unlink.from")?, to: names.pid(l.to, "unlink.to")? })
            }
            Body::Exit(e) => Frame::Exit(Exit {
                from: names.pid(e.from, "exit.from")?,
                to: names.pid(e.to, "exit.to")?,
                reason: exit_reason(e.reason, "exit.reason")?,
                linked: e.linked,
            }),
            Body::Stop(s) => Frame::Stop(Stop {
                call_id: s.call_id,
                target: names.pid(s.target, "stop.target")?,
                from: names.pid(s.from, "stop.from")?,
                reason: exit_reason(s.reason, "stop.reason")?,
                timeout: Duration::from_millis(s.timeout_ms.into()),
            }),
            Body::RegistrySync(r) => Frame::RegistrySync(RegistrySync {
                full: r.full.map(|f| FullSync { id: f.id, first: f.first, last: f.last }),
                entries: r
                    .entries
                    .into_iter()
                    .map(|e| Ok(RegistryEntry { pid: names.pid(e.pid, "registry_sync.entries.pid")?, name: e.name }))
                    .collect::<Result<_, ProtoError>>()?,
                removed: r.removed,
                answer_wanted: r.answer_wanted,
            }),
            Body::GroupsSync(g) => Frame::GroupsSync(GroupsSync {
                scope: g.scope,
                joined: names.group_pids(g.joined, "groups_sync.joined.pids")?,
                left: names.group_pids(g.left, "groups_sync.left.pids")?,
                full: g.full.map(|f| FullSync { id: f.id, first: f.first, last: f.last }),
                answer_wanted: g.answer_wanted,
            }),
            Body::ObserverQuery(q) => Frame::ObserverQuery { query_id: q.query_id, query: q.query },
            Body::ObserverReply(r) => Frame::ObserverReply { query_id: r.query_id, snapshot: r.snapshot },
        })
    }
}

impl From<Frame> for wire::Envelope {
    fn from(frame: Frame) -> Self {
        let body = match frame {
            Frame::Hello(h) => Body::Hello(wire::Hello {
                protocol_version: h.version,
                node_id: h.node.to_string(),
                creation: h.creation,
                nonce: h.nonce,
            }),
            Frame::Challenge(c) => Body::Challenge(wire::Challenge {
                protocol_version: c.version,
                node_id: c.node.to_string(),
                creation: c.creation,
                nonce: c.nonce,
            }),
            Frame::Proof(proof) => Body::Proof(wire::Proof { proof }),
            Frame::Welcome { proof } => Body::Welcome(wire::Welcome { proof }),
            Frame::Reject(reason) => Body::Reject(wire::Reject {
                reason: match reason {
                    RejectReason::NotAllowed => wire::RejectReason::NotAllowed,
                    RejectReason::Duplicate => wire::RejectReason::Duplicate,
                } as i32,
            }),
            Frame::Heartbeat => Body::Heartbeat(wire::Heartbeat {}),
            Frame::Members(members) => Body::Members(wire::Members {
                members: members
                    .into_iter()
                    .map(|m| wire::Member { node_id: m.node.to_string(), creation: m.creation })
                    .collect(),
            }),
            Frame::Goodbye => Body::Goodbye(wire::Goodbye {}),
            Frame::CastCredit { consumed, window } => Body::CastCredit(wire::CastCredit { consumed, window }),
            Frame::Call(c) => Body::Call(wire::Call {
                call_id: c.call_id,
                target: Some(wire_target(c.target)),
                from: Some(wire_pid(&c.from)),
                payload: c.payload,
                timeout_ms: millis(c.timeout),
            }),
            Frame::Reply(r) => Body::Reply(wire::Reply {
                call_id: r.call_id,
                result: Some(match r.result {
                    Ok(payload) => wire::reply::Result::Payload(payload),
                    Err(failure) => wire::reply::Result::Error(wire_call_failure(failure)),
                }),
            }),
            Frame::Cast(c) => Body::Cast(wire::Cast {
                target: Some(wire_target(c.target)),
                from: Some(wire_pid(&c.from)),
                payload: c.payload,
            }),
            Frame::SpawnRequest(s) => Body::SpawnRequest(wire::SpawnRequest {
                spawn_id: s.spawn_id,
                behaviour: s.behaviour,
                init_args: s.init_args,
                name: s.name.unwrap_or_default(),
                registration: match s.registration {
                    Registration::None => wire::Registration::None,
                    Registration::Local => wire::Registration::Local,
                    Registration::Global => wire::Registration::Global,
                } as i32,
                timeout_ms: millis(s.timeout),
                from: Some(wire_pid(&s.from)),
                link: s.bonds.as_ref().and_then(|b| b.link.as_ref()).map(wire_pid),
                supervisor: s.bonds.as_ref().and_then(|b| b.supervisor.as_ref()).map(wire_pid),
                restart: match s.bonds.map_or(Restart::Permanent, |b| b.restart) {
                    Restart::Permanent => wire::SpawnRestart::Permanent,
                    Restart::Transient => wire::SpawnRestart::Transient,
                    Restart::Temporary => wire::SpawnRestart::Temporary,
                } as i32,
            }),
            Frame::SpawnReply(s) => Body::SpawnReply(wire::SpawnReply {
                spawn_id: s.spawn_id,
                result: Some(match s.result {
                    Ok(p) => wire::spawn_reply::Result::Pid(wire_pid(&p)),
                    Err(failure) => wire::spawn_reply::Result::Error(wire_spawn_failure(failure)),
                }),
            }),
            Frame::Monitor(m) => Body::Monitor(wire::Monitor {
                monitor_id: m.monitor_id,
                watcher: Some(wire_pid(&m.watcher)),
                target: Some(wire_target(m.target)),
            }),
            Frame::Demonitor(d) => {
                Body::Demonitor(wire::Demonitor { monitor_id: d.monitor_id, watcher: Some(wire_pid(&d.watcher)) })
            }
            Frame::Down(d) => Body::Down(wire::Down {
                monitor_id: d.monitor_id,
                watcher: Some(wire_pid(&d.watcher)),
                pid: Some(wire_pid(&d.pid)),
                reason: Some(wire_exit_reason(&d.reason)),
            }),
            Frame::Link(l) => Body::Link(wire::Link { from: Some(wire_pid(&l.from)), to: Some(wire_pid(&l.to)) }),
            Frame::Unlink(l) => Body::Unlink(wire::Unlink { from: Some(wire_pid(&l.from)), to: Some(wire_pid(&l.to)) }),
            Frame::Exit(e) => Body::Exit(wire::Exit {
                from: Some(wire_pid(&e.from)),
                to: Some(wire_pid(&e.to)),
                reason: Some(wire_exit_reason(&e.reason)),
                linked: e.linked,
            }),
            Frame::Stop(s) => Body::Stop(wire::Stop {
                call_id: s.call_id,
                target: Some(wire_pid(&s.target)),
                from: Some(wire_pid(&s.from)),
                reason: Some(wire_exit_reason(&s.reason)),
                timeout_ms: millis(s.timeout),
            }),
            Frame::RegistrySync(r) => Body::RegistrySync(wire::RegistrySync {
                full: r.full.map(|f| wire::FullSync { id: f.id, first: f.first, last: f.last }),
                entries: r
                    .entries
                    .into_iter()
                    .map(|e| wire::RegistryEntry { name: e.name, pid: Some(wire_pid(&e.pid)) })
                    .collect(),
                removed: r.removed,
                answer_wanted: r.answer_wanted,
            }),
            Frame::GroupsSync(g) => Body::GroupsSync(wire::GroupsSync {
                scope: g.scope,
                joined: wire_group_pids(g.joined),
                left: wire_group_pids(g.left),
                full: g.full.map(|f| wire::FullSync { id: f.id, first: f.first, last: f.last }),
                answer_wanted: g.answer_wanted,
            }),
            Frame::ObserverQuery { query_id, query } => Body::ObserverQuery(wire::ObserverQuery { query_id, query }),
            Frame::ObserverReply { query_id, snapshot } => {
                Body::ObserverReply(wire::ObserverReply { query_id, snapshot })
            }
        };
        wire::Envelope { body: Some(body) }
    }
}

/// A node's incarnation is never 0 (a node draws it again until it is not), so 0 means the field is missing.
fn creation(value: u32, field: &'static str) -> Result<u32, ProtoError> {
    if value == 0 { Err(ProtoError::missing(field)) } else { Ok(value) }
}

/// A handshake proof is an HMAC-SHA256 tag: exactly 32 bytes.
fn proof(value: bytes::Bytes, field: &'static str) -> Result<bytes::Bytes, ProtoError> {
    if value.len() == crate::auth::PROOF_LEN {
        Ok(value)
    } else {
        Err(ProtoError::invalid(field, format!("must be {} bytes, not {}", crate::auth::PROOF_LEN, value.len())))
    }
}

/// A node id as a peer sends it: valid, and in its canonical text, since ids are compared as text (by the
/// reader's fast path among others); `a@h:04` would otherwise be a second spelling of `a@h:4`.
fn node_id(text: &str, field: &'static str) -> Result<NodeId, ProtoError> {
    let id: NodeId = text.parse().map_err(|e: crate::NodeIdError| ProtoError::invalid(field, e.reason))?;
    if id.as_str() != text {
        return Err(ProtoError::invalid(field, "node id not in its canonical form"));
    }
    Ok(id)
}

/// The node names seen lately on one connection. Pids in frames name a handful of nodes over and over; a name
/// found here was validated before and its shared text is reused, so a pid costs no parse and no allocation.
#[derive(Default)]
pub(crate) struct NodeNames {
    recent: Vec<NodeName>,
}

/// How many names a connection remembers (a cluster's worth, for the usual sizes).
const RECENT_NAMES: usize = 32;

impl NodeNames {
    pub(crate) fn name(&mut self, text: &str, field: &'static str) -> Result<NodeName, ProtoError> {
        if let Some(known) = self.known(text.as_bytes()) {
            return Ok(known);
        }
        let name = node_id(text, field)?.node_name();
        if self.recent.len() == RECENT_NAMES {
            self.recent.remove(0);
        }
        self.recent.push(name.clone());
        Ok(name)
    }

    /// A name seen before, found by its raw bytes (so a hit needs no UTF-8 check).
    pub(crate) fn known(&self, raw: &[u8]) -> Option<NodeName> {
        self.recent.iter().find(|known| known.as_str().as_bytes() == raw).cloned()
    }

    fn pid(&mut self, pid: Option<wire::Pid>, field: &'static str) -> Result<Pid, ProtoError> {
        let pid = pid.ok_or(ProtoError::missing(field))?;
        Ok(Pid::new(self.name(&pid.node, field)?, pid.creation, pid.id))
    }

    fn group_pids(&mut self, groups: Vec<wire::GroupPids>, field: &'static str) -> Result<Vec<GroupPids>, ProtoError> {
        groups
            .into_iter()
            .map(|g| {
                let pids = g.pids.into_iter().map(|p| self.pid(Some(p), field)).collect::<Result<_, _>>()?;
                Ok(GroupPids { group: g.group, pids })
            })
            .collect()
    }

    fn target(&mut self, target: Option<wire::Target>, field: &'static str) -> Result<Target, ProtoError> {
        match target.and_then(|t| t.to).ok_or(ProtoError::missing(field))? {
            wire::target::To::Pid(p) => Ok(Target::Pid(self.pid(Some(p), field)?)),
            wire::target::To::Name(name) if !name.is_empty() => Ok(Target::Name(name)),
            wire::target::To::Name(_) => Err(ProtoError::invalid(field, "empty name")),
        }
    }
}

fn wire_group_pids(groups: Vec<GroupPids>) -> Vec<wire::GroupPids> {
    groups
        .into_iter()
        .map(|g| wire::GroupPids { group: g.group, pids: g.pids.iter().map(wire_pid).collect() })
        .collect()
}

fn wire_pid(pid: &Pid) -> wire::Pid {
    wire::Pid { node: pid.node().as_str().to_owned(), creation: pid.creation(), id: pid.id() }
}

fn wire_target(target: Target) -> wire::Target {
    wire::Target {
        to: Some(match target {
            Target::Pid(p) => wire::target::To::Pid(wire_pid(&p)),
            Target::Name(name) => wire::target::To::Name(name),
        }),
    }
}

fn exit_reason(reason: Option<wire::ExitReason>, field: &'static str) -> Result<ExitReason, ProtoError> {
    let reason = reason.ok_or(ProtoError::missing(field))?;
    Ok(match wire::ExitKind::try_from(reason.kind) {
        Ok(wire::ExitKind::Normal) => ExitReason::Normal,
        Ok(wire::ExitKind::Shutdown) => ExitReason::Shutdown,
        Ok(wire::ExitKind::Killed) => ExitReason::Killed,
        Ok(wire::ExitKind::Error) => ExitReason::error(reason.message),
        Ok(wire::ExitKind::Noproc) => ExitReason::NoProc,
        Ok(wire::ExitKind::Noconnection) => ExitReason::NoConnection,
        Ok(wire::ExitKind::Unspecified) | Err(_) => return Err(ProtoError::invalid(field, "unknown exit kind")),
    })
}

fn wire_exit_reason(reason: &ExitReason) -> wire::ExitReason {
    let (kind, message) = match reason {
        ExitReason::Normal => (wire::ExitKind::Normal, String::new()),
        ExitReason::Shutdown => (wire::ExitKind::Shutdown, String::new()),
        ExitReason::Killed => (wire::ExitKind::Killed, String::new()),
        ExitReason::Error(message) => (wire::ExitKind::Error, message.to_string()),
        ExitReason::NoProc => (wire::ExitKind::Noproc, String::new()),
        ExitReason::NoConnection => (wire::ExitKind::Noconnection, String::new()),
        // A reason added to the core later travels as an error carrying its text.
        other => (wire::ExitKind::Error, other.to_string()),
    };
    wire::ExitReason { kind: kind as i32, message }
}

fn spawn_bonds(
    names: &mut NodeNames,
    link: Option<wire::Pid>,
    supervisor: Option<wire::Pid>,
    restart: i32,
) -> Result<Option<Box<SpawnBonds>>, ProtoError> {
    let restart = match wire::SpawnRestart::try_from(restart) {
        Ok(wire::SpawnRestart::Permanent) => Restart::Permanent,
        Ok(wire::SpawnRestart::Transient) => Restart::Transient,
        Ok(wire::SpawnRestart::Temporary) => Restart::Temporary,
        Err(_) => return Err(ProtoError::invalid("spawn_request.restart", "unknown value")),
    };
    let link = link.map(|pid| names.pid(Some(pid), "spawn_request.link")).transpose()?;
    let supervisor = supervisor.map(|pid| names.pid(Some(pid), "spawn_request.supervisor")).transpose()?;
    if link.is_none() && supervisor.is_none() && restart == Restart::Permanent {
        return Ok(None);
    }
    Ok(Some(Box::new(SpawnBonds { link, supervisor, restart })))
}

fn call_failure(error: wire::CallError) -> Result<CallFailure, ProtoError> {
    Ok(match wire::CallErrorKind::try_from(error.kind) {
        Ok(wire::CallErrorKind::Noproc) => CallFailure::NoProc,
        Ok(wire::CallErrorKind::Exited) => CallFailure::Exited(exit_reason(error.exit, "reply.error.exit")?),
        Ok(wire::CallErrorKind::Decode) => CallFailure::Decode(error.message),
        Ok(wire::CallErrorKind::NotEncodable) => CallFailure::NotEncodable,
        Ok(wire::CallErrorKind::Timeout) => CallFailure::Timeout,
        Ok(wire::CallErrorKind::ReplyDropped) => CallFailure::ReplyDropped,
        Ok(wire::CallErrorKind::Unspecified) | Err(_) => {
            return Err(ProtoError::invalid("reply.error.kind", "unknown error kind"));
        }
    })
}

fn wire_call_failure(failure: CallFailure) -> wire::CallError {
    let (kind, exit, message) = match failure {
        CallFailure::NoProc => (wire::CallErrorKind::Noproc, None, String::new()),
        CallFailure::Exited(reason) => (wire::CallErrorKind::Exited, Some(wire_exit_reason(&reason)), String::new()),
        CallFailure::Decode(message) => (wire::CallErrorKind::Decode, None, message),
        CallFailure::NotEncodable => (wire::CallErrorKind::NotEncodable, None, String::new()),
        CallFailure::Timeout => (wire::CallErrorKind::Timeout, None, String::new()),
        CallFailure::ReplyDropped => (wire::CallErrorKind::ReplyDropped, None, String::new()),
    };
    wire::CallError { kind: kind as i32, exit, message }
}

fn spawn_failure(error: wire::SpawnError) -> Result<SpawnFailure, ProtoError> {
    Ok(match wire::SpawnErrorKind::try_from(error.kind) {
        Ok(wire::SpawnErrorKind::UnknownBehaviour) => SpawnFailure::UnknownBehaviour(error.message),
        Ok(wire::SpawnErrorKind::InitFailed) => SpawnFailure::InitFailed(error.message),
        Ok(wire::SpawnErrorKind::NameTaken) => SpawnFailure::NameTaken(error.message),
        Ok(wire::SpawnErrorKind::BadArguments) => SpawnFailure::BadArguments(error.message),
        Ok(wire::SpawnErrorKind::Timeout) => SpawnFailure::Timeout,
        Ok(wire::SpawnErrorKind::Unspecified) | Err(_) => {
            return Err(ProtoError::invalid("spawn_reply.error.kind", "unknown error kind"));
        }
    })
}

fn wire_spawn_failure(failure: SpawnFailure) -> wire::SpawnError {
    let (kind, message) = match failure {
        SpawnFailure::UnknownBehaviour(m) => (wire::SpawnErrorKind::UnknownBehaviour, m),
        SpawnFailure::InitFailed(m) => (wire::SpawnErrorKind::InitFailed, m),
        SpawnFailure::NameTaken(m) => (wire::SpawnErrorKind::NameTaken, m),
        SpawnFailure::BadArguments(m) => (wire::SpawnErrorKind::BadArguments, m),
        SpawnFailure::Timeout => (wire::SpawnErrorKind::Timeout, String::new()),
    };
    wire::SpawnError { kind: kind as i32, message }
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
