//! `NodeId`: a node's cluster-wide name, `name@host:port`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use noex_core::NodeName;

/// A node's identity: `name@host:port`, where `host:port` is the address other nodes dial.
///
/// The name starts with a letter, continues with `[A-Za-z0-9_-]`, and is at most 64 characters; the host is an
/// IPv4 address, a bracketed IPv6 address or an RFC 1123 hostname; the port is 1-65535. The text form is
/// canonical (IPv6 always bracketed), and equality is equality of that text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    text: Arc<str>,
    name_len: usize,
    host: Host,
    port: u16,
}

/// The host part of a [`NodeId`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written bracketed).
    Ipv6(Ipv6Addr),
    /// A hostname.
    Name(String),
}

/// Why a text is not a valid [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node id '{text}': {reason}")]
pub struct NodeIdError {
    /// The text that was rejected.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The longest node name accepted.
pub const MAX_NAME_LEN: usize = 64;

impl NodeId {
    /// Builds a node id from its parts, validating each.
    pub fn new(name: &str, host: Host, port: u16) -> Result<Self, NodeIdError> {
        let text = match &host {
            Host::Ipv6(ip) => format!("{name}@[{ip}]:{port}"),
            Host::Ipv4(ip) => format!("{name}@{ip}:{port}"),
            Host::Name(hostname) => format!("{name}@{hostname}:{port}"),
        };
        let fail = |reason| NodeIdError { text: text.clone(), reason };
        check_name(name).map_err(fail)?;
        if let Host::Name(hostname) = &host {
            check_hostname(hostname).map_err(fail)?;
        }
        if port == 0 {
            return Err(fail("port must be between 1 and 65535"));
        }
        Ok(NodeId { name_len: name.len(), text: text.into(), host, port })
    }

    /// The node's name (before `@`).
    pub fn name(&self) -> &str {
        &self.text[..self.name_len]
    }

    /// The host other nodes dial.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port other nodes dial.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, ready for `TcpStream::connect`.
    pub fn address(&self) -> String {
        match &self.host {
            Host::Ipv4(ip) => format!("{ip}:{}", self.port),
            Host::Ipv6(ip) => format!("[{ip}]:{}", self.port),
            Host::Name(name) => format!("{name}:{}", self.port),
        }
    }

    /// The canonical text, `name@host:port`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// This id as the node name carried by pids (shares the text).
    pub fn node_name(&self) -> NodeName {
        NodeName::new(Arc::clone(&self.text))
    }
}

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(text: &str) -> Result<Self, NodeIdError> {
        let fail = |reason| NodeIdError { text: text.to_owned(), reason };
        // At the last '@', and the name checked first: neither part may hold one, and in `a@b@host:port` it is
        // the name that is wrong.
        let (name, rest) = text.rsplit_once('@').ok_or_else(|| fail("missing '@' between name and host"))?;
        check_name(name).map_err(fail)?;
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (ip, after) = bracketed.split_once(']').ok_or_else(|| fail("missing ']' after IPv6 address"))?;
            let port = after.strip_prefix(':').ok_or_else(|| fail("missing ':' before the port"))?;
            let ip = ip.parse::<Ipv6Addr>().map_err(|_| fail("host is not a valid IPv6 address"))?;
            (Host::Ipv6(ip), port)
        } else {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| fail("missing ':' before the port"))?;
            if host.contains(':') {
                return Err(fail("an IPv6 host must be written in brackets, as [::1]"));
            }
            (parse_host(host).map_err(fail)?, port)
        };
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("port is not a number"));
        }
        let port =
            port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| fail("port must be between 1 and 65535"))?;
        NodeId::new(name, host, port).map_err(|error| NodeIdError { text: text.to_owned(), reason: error.reason })
    }
}

impl TryFrom<&str> for NodeId {
    type Error = NodeIdError;

    fn try_from(text: &str) -> Result<Self, NodeIdError> {
        text.parse()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("name is empty"),
        Some(first) if !first.is_ascii_alphabetic() => return Err("name must start with a letter"),
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err("name may contain only letters, digits, '_' and '-'");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("name is longer than 64 characters");
    }
    Ok(())
}

fn parse_host(host: &str) -> Result<Host, &'static str> {
    if host.is_empty() {
        return Err("host is empty");
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host.parse().map(Host::Ipv4).map_err(|_| "host looks like IPv4 but is not a valid IPv4 address");
    }
    check_hostname(host)?;
    Ok(Host::Name(host.to_owned()))
}

/// RFC 1123: dot-separated labels of 1-63 letters, digits and hyphens, not starting or ending with a hyphen;
/// at most 253 characters in all.
fn check_hostname(host: &str) -> Result<(), &'static str> {
    if host.len() > 253 {
        return Err("hostname is longer than 253 characters");
    }
    for label in host.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err("host is not a valid IPv4 address, bracketed IPv6 address or hostname");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_parse_and_print_canonically() {
        for text in [
            "app1@192.168.1.1:4369",
            "worker@node1.example.com:4369",
            "dev@localhost:4369",
            "my_app@localhost:1",
            "my-app@localhost:65535",
            "app@0.0.0.0:4369",
            "app@a.b.c:4369",
            "app@[::1]:4369",
            "app@[fe80::1]:4369",
        ] {
            let id: NodeId = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(id.as_str(), text);
        }
        let id: NodeId = "node1@127.0.0.1:4370".parse().unwrap();
        assert_eq!((id.name(), id.port(), id.address()), ("node1", 4370, "127.0.0.1:4370".to_owned()));
        assert_eq!("a@[::1]:9".parse::<NodeId>().unwrap().address(), "[::1]:9");
    }

    #[test]
    fn invalid_ids_are_rejected_with_a_reason() {
        let long = format!("{}@localhost:4369", "a".repeat(65));
        for (text, reason) in [
            ("applocalhost:4369", "missing '@' between name and host"),
            ("app@localhost", "missing ':' before the port"),
            ("@localhost:4369", "name is empty"),
            ("1app@localhost:4369", "name must start with a letter"),
            ("app.name@localhost:4369", "name may contain only letters, digits, '_' and '-'"),
            ("app name@localhost:4369", "name may contain only letters, digits, '_' and '-'"),
            ("a@b@localhost:4369", "name may contain only letters, digits, '_' and '-'"),
            (long.as_str(), "name is longer than 64 characters"),
            ("app@:4369", "host is empty"),
            ("app@-invalid:4369", "host is not a valid IPv4 address, bracketed IPv6 address or hostname"),
            ("app@invalid-:4369", "host is not a valid IPv4 address, bracketed IPv6 address or hostname"),
            ("app@256.0.0.1:4369", "host looks like IPv4 but is not a valid IPv4 address"),
            ("app@::1:4369", "an IPv6 host must be written in brackets, as [::1]"),
            ("app@localhost:0", "port must be between 1 and 65535"),
            ("app@localhost:65536", "port must be between 1 and 65535"),
            ("app@localhost:abc", "port is not a number"),
            ("app@localhost:-1", "port is not a number"),
            ("app@localhost:43x9", "port is not a number"),
        ] {
            let error = text.parse::<NodeId>().expect_err(text);
            assert_eq!(error.reason, reason, "{text}");
            assert_eq!(error.to_string(), format!("invalid node id '{text}': {reason}"));
        }
    }
}
