//! `ClusterConfig`: how a node joins a cluster, with defaults, validated before anything starts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use noex_proto::{DEFAULT_MAX_FRAME, HANDSHAKE_MAX_FRAME, Host, NodeId};

use crate::{ConfigError, Cookie};

/// The default cluster port (Erlang's EPMD port, as noex uses).
pub const DEFAULT_PORT: u16 = 4369;

/// How a node joins a cluster. Build with [`ClusterConfig::new`] and adjust the public fields.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The node's name: a letter, then letters, digits, `_` or `-`; at most 64 characters.
    pub name: String,
    /// The host other nodes dial to reach this one (the advertised address). Default `127.0.0.1`.
    pub host: String,
    /// The port to advertise, and to listen on unless `bind` says otherwise. Default 4369; 0 picks a free port
    /// (the node id then carries it).
    pub port: u16,
    /// The address to bind, when it differs from what is advertised (all interfaces, or a port forwarded from
    /// `port`). Default: `host`:`port` when `host` is an IP address, else all interfaces on `port`. What is bound
    /// never changes what is advertised.
    pub bind: Option<SocketAddr>,
    /// Nodes to dial at start (`name@host:port`); unreachable ones are retried with backoff.
    pub seeds: Vec<String>,
    /// How often an idle connection sends a heartbeat. Default 5 s, as noex (Erlang ticks every 15 s).
    ///
    /// Heartbeats only find nodes that went silent (hung, paused, cut off by the network): a node that crashes
    /// or leaves closes its connections and is reported down at once whatever this says. Each idle link costs
    /// one frame each way per interval: a 128-node mesh in one process spends about 55% of a core on heartbeats
    /// every 500 ms, 7% every 5 s.
    pub heartbeat_interval: Duration,
    /// How long a connection may stay silent before its node is declared down. Default 15 s, as noex (three
    /// intervals; Erlang takes 45-75 s).
    pub failure_timeout: Duration,
    /// How long our dial of a node may take, from the TCP connect to its `Welcome`. Default 5 s.
    pub handshake_timeout: Duration,
    /// How long a connection we accepted may take to authenticate (its `Hello`, then its `Proof`): the most an
    /// unauthenticated client holds one of our handshake slots. The `Hello` comes with the connection, then it
    /// takes one round trip and two HMACs; the default, 1 s, is twice the worst round trips between continents
    /// (300-400 ms), with room for a busy peer.
    pub preauth_timeout: Duration,
    /// The first reconnect delay; it doubles (with jitter) up to `reconnect_max`. Default 200 ms.
    pub reconnect_min: Duration,
    /// The longest reconnect delay. Default 10 s.
    pub reconnect_max: Duration,
    /// How long a node that is gone is remembered: a node learned from a peer (not a seed) that cannot be
    /// reached for this long is no longer dialed, and a node disconnected for this long leaves
    /// [`Cluster::nodes`](crate::Cluster::nodes). A node that said goodbye is never redialed, and gossip about
    /// that incarnation is ignored while it is remembered. Seeds are dialed for ever. Default 60 s.
    pub forget_after: Duration,
    /// The largest frame accepted after authentication. Default 8 MiB.
    pub max_frame: usize,
    /// The largest frame accepted before authentication. Default 64 KiB.
    pub handshake_max_frame: usize,
    /// The hard bound on bytes waiting to be written to one node: past it the connection is closed and the node
    /// reported down as `overloaded` (every monitor and link on its processes fires), rather than anything being
    /// dropped or memory growing without bound. Only fire-and-forget casts and a very slow link get there:
    /// awaited casts stop at the cast window. Default 64 MiB.
    pub outbound_buffer: usize,
    /// The cast window: how much casts to one node may cost before the node has consumed them (a cast costs its
    /// bytes on the wire plus 64). Past it, `try_cast` fails with `Full` and `cast_await` waits; fire-and-forget
    /// casts are still sent. Bounds what awaited casts to a slow node hold in memory on both sides. Default 1 MiB
    /// (Erlang's default busy limit of a distribution port).
    pub cast_window: usize,
    /// The cluster secret. It comes first; then `cookie_file`, then `NOEX_COOKIE`, then `~/.noex.cookie`
    /// (created on first use). Prefer a file or the environment to a command-line flag: other local users can
    /// read a process's arguments.
    pub cookie: Option<Cookie>,
    /// A file holding the cluster secret, used when `cookie` is `None`. It must exist and be private to its owner
    /// (mode 0600 or 0400): one open to its group or others is refused, with the `chmod` that fixes it.
    pub cookie_file: Option<PathBuf>,
}

impl ClusterConfig {
    /// A configuration with every default, for a node called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ClusterConfig {
            name: name.into(),
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            bind: None,
            seeds: Vec::new(),
            heartbeat_interval: Duration::from_secs(5),
            failure_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(5),
            preauth_timeout: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
            forget_after: Duration::from_secs(60),
            max_frame: DEFAULT_MAX_FRAME,
            handshake_max_frame: HANDSHAKE_MAX_FRAME,
            outbound_buffer: 64 << 20,
            cast_window: 1 << 20,
            cookie: None,
            cookie_file: None,
        }
    }

    /// Checks every setting and resolves the cookie; the first problem is the error.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        // Port 0 means "pick one"; check the identity with a placeholder port.
        let probe = format!("{}@{}:{}", self.name, bracket(&self.host), self.port.max(1));
        let identity: NodeId = probe.parse().map_err(ConfigError::Identity)?;
        let seeds = self
            .seeds
            .iter()
            .map(|seed| seed.parse::<NodeId>().map_err(ConfigError::Seed))
            .collect::<Result<Vec<_>, _>>()?;
        let setting = |setting, reason: &str| Err(ConfigError::Setting { setting, reason: reason.into() });
        if self.heartbeat_interval < Duration::from_millis(10) {
            return setting("heartbeat_interval", "must be at least 10 ms");
        }
        if self.failure_timeout <= self.heartbeat_interval {
            return setting("failure_timeout", "must be longer than heartbeat_interval");
        }
        if self.handshake_timeout.is_zero() || self.preauth_timeout.is_zero() {
            return setting("handshake_timeout/preauth_timeout", "must be positive");
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return setting("reconnect_min/reconnect_max", "need 0 < reconnect_min <= reconnect_max");
        }
        if self.forget_after < self.failure_timeout {
            return setting("forget_after", "must be at least failure_timeout");
        }
        if self.reconnect_max > Duration::from_secs(3600) || self.failure_timeout > Duration::from_secs(3600) {
            return setting("reconnect_max/failure_timeout", "must be at most an hour");
        }
        if self.handshake_max_frame < 1024 || self.handshake_max_frame > self.max_frame {
            return setting("handshake_max_frame", "must be between 1 KiB and max_frame");
        }
        if self.max_frame > u32::MAX as usize {
            return setting("max_frame", "must fit a 4-byte length prefix");
        }
        if self.outbound_buffer == 0 {
            return setting("outbound_buffer", "must be positive");
        }
        if self.cast_window < 1024 {
            return setting("cast_window", "must be at least 1 KiB");
        }
        let cookie = Cookie::resolve(self.cookie.as_ref(), self.cookie_file.as_deref())?;
        let bind = self.bind.unwrap_or_else(|| {
            let ip = match identity.host() {
                Host::Ipv4(ip) => IpAddr::V4(*ip),
                Host::Ipv6(ip) => IpAddr::V6(*ip),
                Host::Name(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            };
            SocketAddr::new(ip, self.port)
        });
        Ok(Settings { config: self.clone(), host: identity.host().clone(), bind, seeds, cookie })
    }
}

/// A validated configuration, ready to start a node.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) config: ClusterConfig,
    pub(crate) host: Host,
    pub(crate) bind: SocketAddr,
    pub(crate) seeds: Vec<NodeId>,
    pub(crate) cookie: Cookie,
}

impl Settings {
    /// The node id once the listener is bound to `bound_port`: the configured port, unless that is 0.
    pub(crate) fn node_id(&self, bound_port: u16) -> NodeId {
        let port = if self.config.port == 0 { bound_port } else { self.config.port };
        NodeId::new(&self.config.name, self.host.clone(), port).expect("name and host were validated")
    }

    /// The address to bind.
    pub fn bind_address(&self) -> SocketAddr {
        self.bind
    }

    /// The seeds, parsed.
    pub fn seeds(&self) -> &[NodeId] {
        &self.seeds
    }
}

/// IPv6 hosts are written bracketed inside a node id.
fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> ClusterConfig {
        ClusterConfig { cookie: Some(Cookie::new("test")), ..ClusterConfig::new(name) }
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let c = ClusterConfig::new("a");
        assert_eq!((c.port, c.host.as_str()), (4369, "127.0.0.1"));
        assert_eq!((c.heartbeat_interval, c.failure_timeout), (Duration::from_secs(5), Duration::from_secs(15)));
        assert_eq!((c.reconnect_min, c.reconnect_max), (Duration::from_millis(200), Duration::from_secs(10)));
        assert_eq!((c.max_frame, c.handshake_max_frame), (8 << 20, 64 << 10));
        assert_eq!((c.handshake_timeout, c.preauth_timeout), (Duration::from_secs(5), Duration::from_secs(1)));
        assert_eq!((c.cookie.as_ref(), c.cookie_file.as_ref()), (None, None));
        let settings = config("a").validate().unwrap();
        assert_eq!(settings.bind_address(), "127.0.0.1:4369".parse().unwrap(), "binds the advertised IP");
        assert_eq!(settings.node_id(4369).as_str(), "a@127.0.0.1:4369");
    }

    #[test]
    fn binding_all_interfaces_keeps_the_advertised_host() {
        let all = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 7000);
        let c = ClusterConfig { bind: Some(all), host: "10.1.2.3".into(), port: 7000, ..config("a") };
        let settings = c.validate().unwrap();
        assert_eq!(settings.bind_address(), all);
        assert_eq!(settings.node_id(7000).as_str(), "a@10.1.2.3:7000");
        let forwarded = ClusterConfig { bind: Some("127.0.0.1:9000".parse().unwrap()), port: 80, ..config("f") };
        assert_eq!(
            forwarded.validate().unwrap().node_id(9000).as_str(),
            "f@127.0.0.1:80",
            "advertises the forwarded port"
        );
        let v6 = ClusterConfig { host: "::1".into(), ..config("b") }.validate().unwrap();
        assert_eq!(v6.node_id(4369).as_str(), "b@[::1]:4369");
    }

    #[test]
    fn invalid_settings_are_typed_errors_with_clear_text() {
        let cases: Vec<(ClusterConfig, &str)> = vec![
            (
                config("1abc"),
                "invalid node identity: invalid node id '1abc@127.0.0.1:4369': name must start with a letter",
            ),
            (
                ClusterConfig { seeds: vec!["nope".into()], ..config("a") },
                "invalid seed: invalid node id 'nope': missing '@' between name and host",
            ),
            (
                ClusterConfig { host: "bad host".into(), ..config("a") },
                "invalid node identity: invalid node id 'a@bad host:4369': host is not a valid IPv4 address, bracketed IPv6 address or hostname",
            ),
            (
                ClusterConfig { failure_timeout: Duration::from_millis(100), ..config("a") },
                "invalid setting 'failure_timeout': must be longer than heartbeat_interval",
            ),
            (
                ClusterConfig { reconnect_max: Duration::from_millis(1), ..config("a") },
                "invalid setting 'reconnect_min/reconnect_max': need 0 < reconnect_min <= reconnect_max",
            ),
            (
                ClusterConfig { handshake_max_frame: 16 << 20, ..config("a") },
                "invalid setting 'handshake_max_frame': must be between 1 KiB and max_frame",
            ),
            (
                ClusterConfig { preauth_timeout: Duration::ZERO, ..config("a") },
                "invalid setting 'handshake_timeout/preauth_timeout': must be positive",
            ),
            (
                ClusterConfig { cookie: Some(Cookie::new("")), ..config("a") },
                "cannot obtain the cluster cookie: the cookie is empty",
            ),
        ];
        for (config, text) in cases {
            assert_eq!(config.validate().unwrap_err().to_string(), text);
        }
    }
}
