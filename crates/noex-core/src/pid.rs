//! Process identity: which node a process lives on, which incarnation of that node, and its number there.

use std::fmt;
use std::sync::Arc;

/// The name of the node a process lives on, as the cluster layer spells it (`name@host:port`).
///
/// A runtime that is not part of a cluster uses [`NodeName::local`] (`nonode@nohost`, as Erlang does).
/// Cloning is cheap (a shared string); comparison is by content.
#[derive(Clone, PartialOrd, Ord)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// The node name of a runtime that belongs to no cluster.
    pub const LOCAL: &'static str = "nonode@nohost";

    /// Wraps a node name. The cluster layer validates the `name@host:port` grammar; this crate treats it as opaque.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        NodeName(name.into())
    }

    /// `nonode@nohost`.
    pub fn local() -> Self {
        NodeName::new(Self::LOCAL)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for NodeName {
    fn eq(&self, other: &Self) -> bool {
        // Pids of one node share the same allocation, so the pointer test answers almost every comparison.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for NodeName {}

impl std::hash::Hash for NodeName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A process identifier: node, node incarnation (`creation`) and a number unique within that incarnation.
///
/// A restarted node gets a new creation number, so a pid of the old incarnation never names a process of the new
/// one. The triple is all a later layer needs to route a message to a process on another node.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    node: NodeName,
    creation: u32,
    id: u64,
}

impl Pid {
    /// Builds a pid. Runtimes mint pids for their own processes; other layers use this to name remote ones.
    pub fn new(node: NodeName, creation: u32, id: u64) -> Self {
        Pid { node, creation, id }
    }

    /// The node the process lives on.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The incarnation of that node.
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// The process number within that incarnation.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}@{}>", self.id, self.creation, self.node)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The pid names no process: `<0.0@nonode@nohost>`. Needed so that a pid can be a field of a prost message.
impl Default for Pid {
    fn default() -> Self {
        Pid::new(NodeName::local(), 0, 0)
    }
}

/// A pid is a protobuf message with the layout of `noex.v1.Pid` (`string node = 1; uint32 creation = 2;
/// uint64 id = 3`), so that it can travel inside a server's own messages (`#[prost(message, optional)]`) and be
/// turned into a [`ServerRef`](crate::ServerRef) on the receiving node with
/// [`Runtime::remote_ref`](crate::Runtime::remote_ref).
impl prost::Message for Pid {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        use prost::encoding::{WireType, encode_key, encode_varint};
        let node = self.node.as_str();
        if !node.is_empty() {
            encode_key(1, WireType::LengthDelimited, buf);
            encode_varint(node.len() as u64, buf);
            buf.put_slice(node.as_bytes());
        }
        if self.creation != 0 {
            prost::encoding::uint32::encode(2, &self.creation, buf);
        }
        if self.id != 0 {
            prost::encoding::uint64::encode(3, &self.id, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => {
                let mut node = String::new();
                prost::encoding::string::merge(wire_type, &mut node, buf, ctx)?;
                self.node = NodeName::new(node);
                Ok(())
            }
            2 => prost::encoding::uint32::merge(wire_type, &mut self.creation, buf, ctx),
            3 => prost::encoding::uint64::merge(wire_type, &mut self.id, buf, ctx),
            _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        use prost::encoding::{encoded_len_varint, key_len};
        let node = self.node.as_str().len();
        let node = if node == 0 { 0 } else { key_len(1) + encoded_len_varint(node as u64) + node };
        let creation = if self.creation == 0 { 0 } else { prost::encoding::uint32::encoded_len(2, &self.creation) };
        let id = if self.id == 0 { 0 } else { prost::encoding::uint64::encoded_len(3, &self.id) };
        node + creation + id
    }

    fn clear(&mut self) {
        *self = Pid::default();
    }
}

/// Identifies one monitor; it comes back in the [`ProcessDown`](crate::ProcessDown) the monitor delivers.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MonitorRef {
    node: NodeName,
    id: u64,
}

impl MonitorRef {
    /// Rebuilds a reference made by `node` (a distribution layer names a remote watcher's monitor this way).
    pub fn new(node: NodeName, id: u64) -> Self {
        MonitorRef { node, id }
    }

    /// The node that created the monitor.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The monitor's number on that node.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Debug for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<{}@{}>", self.id, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_compare_by_node_content_creation_and_id() {
        let a = Pid::new(NodeName::new("a@h:1"), 1, 7);
        let same = Pid::new(NodeName::new(String::from("a@h:1")), 1, 7);
        assert_eq!(a, same);
        assert_ne!(a, Pid::new(NodeName::new("a@h:1"), 2, 7), "another incarnation is another process");
        assert_ne!(a, Pid::new(NodeName::new("b@h:1"), 1, 7));
        assert_eq!(a.to_string(), "<7.1@a@h:1>");
    }

    #[test]
    fn a_pid_travels_inside_a_prost_message() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct Hello {
            #[prost(message, optional, tag = "1")]
            reply_to: Option<Pid>,
            #[prost(string, tag = "2")]
            text: String,
        }
        use prost::Message;
        let pid = Pid::new(NodeName::new("node1@127.0.0.1:4369"), 77, 123_456);
        let hello = Hello { reply_to: Some(pid.clone()), text: "hi".into() };
        let decoded = Hello::decode(hello.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, hello);
        assert_eq!(pid.encoded_len(), pid.encode_to_vec().len());
        assert_eq!(Pid::decode(&[][..]).unwrap(), Pid::default(), "an empty message decodes to the default pid");
    }
}
