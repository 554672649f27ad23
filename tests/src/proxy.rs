//! A TCP proxy for fault injection: forwards connections to a target and can pause forwarding (both
//! directions go silent, nothing is closed), as a network partition or a frozen peer would look, or throttle it
//! to a slow link's rate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy. Dropping it stops accepting; open connections end when either side closes.
pub struct Proxy {
    address: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    paused: watch::Sender<bool>,
    /// Bytes per second in each direction of each connection; 0 is unlimited.
    rate: Arc<AtomicU64>,
}

impl Proxy {
    /// Listens on an ephemeral local port; the target can be set later (before the first connection).
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let address = listener.local_addr().expect("proxy address");
        let target = Arc::new(Mutex::new(None));
        let (paused, _) = watch::channel(false);
        let rate = Arc::new(AtomicU64::new(0));
        let (accept_target, accept_paused, accept_rate) = (target.clone(), paused.clone(), rate.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Some(to) = *accept_target.lock().unwrap() else { continue };
                let paused = accept_paused.subscribe();
                let rate = accept_rate.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(to).await else { return };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::spawn(pump(in_read, out_write, paused.clone(), rate.clone()));
                    pump(out_read, in_write, paused, rate).await;
                });
            }
        });
        Proxy { address, target, paused, rate }
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where connections are forwarded.
    pub fn set_target(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = Some(target);
    }

    /// Stops forwarding bytes in both directions, without closing anything.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Forwards bytes again.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Forwards at most `bytes_per_second` in each direction of each connection (0: as fast as it can), as a
    /// slow link would; the kernel's buffers on both sides fill up behind it.
    pub fn throttle(&self, bytes_per_second: u64) {
        self.rate.store(bytes_per_second, Ordering::Relaxed);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
    rate: Arc<AtomicU64>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let rate = rate.load(Ordering::Relaxed);
        if rate > 0 {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
        // Bytes read just before a pause are held back until it ends, like everything else.
        if paused.wait_for(|paused| !paused).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
