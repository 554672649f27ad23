//! A TCP proxy for fault injection, in front of one node's listener: it can pause forwarding (both directions go
//! silent, nothing is closed, as a partition or a frozen peer looks), throttle it to a slow link's rate, and do
//! either, or cut, per dialing node: the dialer's first frame is a `Hello` that names it in the clear, so the
//! proxy learns who dials and can partition pairs of nodes rather than whole nodes. The workspace tests and the
//! chaos run both use it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use noex_proto::{Frame, FrameCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::codec::Decoder;

/// How a link is treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// No byte is forwarded in either direction; nothing is closed.
    pub paused: bool,
    /// Connections are closed, and new ones closed as soon as their dialer is known.
    pub cut: bool,
    /// Bytes per second in each direction of each connection; 0 is unlimited.
    pub bytes_per_second: u64,
}

/// A running proxy. Dropping it stops accepting; open connections end when either side closes (or are cut).
pub struct Proxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

struct Shared {
    target: Mutex<Option<SocketAddr>>,
    links: Mutex<Links>,
    /// Bumped on every change of `links`, so that waiting connections look again.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Links {
    all: Link,
    dialers: HashMap<String, Link>,
}

impl Proxy {
    /// Listens on an ephemeral local port; the target can be set later (before the first connection).
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let address = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            target: Mutex::new(None),
            links: Mutex::new(Links::default()),
            changed: watch::channel(0).0,
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Some(to) = *accepting.target.lock().unwrap() else { continue };
                tokio::spawn(forward(inbound, to, accepting.clone()));
            }
        });
        Proxy { address, shared, accept }
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where connections are forwarded (new connections only).
    pub fn set_target(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap() = Some(target);
    }

    /// Stops forwarding bytes in both directions, without closing anything.
    pub fn pause(&self) {
        self.shared.update(|links| links.all.paused = true);
    }

    /// Forwards bytes again.
    pub fn resume(&self) {
        self.shared.update(|links| links.all.paused = false);
    }

    /// Forwards at most `bytes_per_second` in each direction of each connection (0: as fast as it can), as a
    /// slow link would; the kernel's buffers on both sides fill up behind it.
    pub fn throttle(&self, bytes_per_second: u64) {
        self.shared.update(|links| links.all.bytes_per_second = bytes_per_second);
    }

    /// Treats connections dialed by the node named `dialer` as `link` says (on top of what applies to all).
    pub fn set_link(&self, dialer: &str, link: Link) {
        self.shared.update(|links| {
            links.dialers.insert(dialer.to_owned(), link);
        });
    }

    /// Forgets every per-dialer setting.
    pub fn clear_links(&self) {
        self.shared.update(|links| links.dialers.clear());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Shared {
    fn update(&self, change: impl FnOnce(&mut Links)) {
        change(&mut self.links.lock().unwrap());
        self.changed.send_modify(|version| *version += 1);
    }

    /// What applies to a connection from `dialer` (unknown until its `Hello` is read).
    fn link(&self, dialer: Option<&String>) -> Link {
        let links = self.links.lock().unwrap();
        let own = dialer.and_then(|d| links.dialers.get(d)).copied().unwrap_or_default();
        let rate = match (links.all.bytes_per_second, own.bytes_per_second) {
            (0, rate) | (rate, 0) => rate,
            (a, b) => a.min(b),
        };
        Link { paused: links.all.paused || own.paused, cut: links.all.cut || own.cut, bytes_per_second: rate }
    }
}

async fn forward(inbound: TcpStream, to: SocketAddr, shared: Arc<Shared>) {
    let Ok(outbound) = TcpStream::connect(to).await else { return };
    let dialer = Arc::new(OnceLock::new());
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::spawn(pump(in_read, out_write, shared.clone(), dialer.clone(), true));
    pump(out_read, in_write, shared, dialer, false).await;
}

/// Forwards `from` to `to` while the link allows; returns (closing its halves) when either side closes or the
/// link is cut. The dialer-to-target direction (`identify`) reads the dialer's name from its first frame.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: Arc<Shared>,
    dialer: Arc<OnceLock<String>>,
    identify: bool,
) {
    let mut changed = shared.changed.subscribe();
    let mut hello = identify.then(BytesMut::new);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if !open(&shared, &dialer, &mut changed).await {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            () = cut(&shared, &dialer, &mut changed) => return,
        };
        if let Some(pending) = &mut hello {
            pending.extend_from_slice(&buffer[..n]);
            if let Some(name) = identify_dialer(pending) {
                if let Some(name) = name {
                    let _ = dialer.set(name);
                }
                hello = None;
            }
        }
        let rate = shared.link(dialer.get()).bytes_per_second;
        if rate > 0 {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
        // Bytes read just before a pause are held back until it ends, like everything else.
        if !open(&shared, &dialer, &mut changed).await {
            return;
        }
        tokio::select! {
            written = to.write_all(&buffer[..n]) => if written.is_err() { return },
            () = cut(&shared, &dialer, &mut changed) => return,
        }
    }
}

/// Waits until the link is not paused; false if it is cut.
async fn open(shared: &Shared, dialer: &OnceLock<String>, changed: &mut watch::Receiver<u64>) -> bool {
    let mut is_cut = false;
    let waited = changed
        .wait_for(|_| {
            let link = shared.link(dialer.get());
            is_cut = link.cut;
            link.cut || !link.paused
        })
        .await;
    waited.is_ok() && !is_cut
}

/// Resolves once the link is cut.
async fn cut(shared: &Shared, dialer: &OnceLock<String>, changed: &mut watch::Receiver<u64>) {
    if changed.wait_for(|_| shared.link(dialer.get()).cut).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The dialer's node name once its first frame is complete: `Some(Some(name))` for a `Hello`, `Some(None)` for
/// anything else (the connection is then only subject to what applies to all), `None` while incomplete.
fn identify_dialer(received: &BytesMut) -> Option<Option<String>> {
    let mut copy = received.clone();
    match FrameCodec::handshake().decode(&mut copy) {
        Ok(None) => None,
        Ok(Some(Ok(Frame::Hello(hello)))) => Some(Some(hello.node.name().to_owned())),
        _ => Some(None),
    }
}
