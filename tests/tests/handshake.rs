//! The handshake seen from the network: what a client that does not know the cookie learns, and a join that a
//! flood of idle connections does not hold up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use noex_proto::{Frame, FrameCodec, Hello, PROTOCOL_VERSION, RejectReason};
use noex_tests::cluster::{DEADLINE, node, wait_connected};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::codec::Framed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_cookie_gets_a_nonce_then_a_refusal_and_nothing_keyed() {
    let a = node("a", &[]).await;
    let stream = TcpStream::connect(a.local().address()).await.unwrap();
    let mut client = Framed::new(stream, FrameCodec::handshake());
    let hello = Hello {
        version: PROTOCOL_VERSION,
        node: "spy@127.0.0.1:1".parse().unwrap(),
        creation: 1,
        nonce: Bytes::from_static(&[9; 32]),
    };
    client.send(Frame::Hello(hello)).await.unwrap();
    match next(&mut client).await {
        // A Challenge has no field that depends on the cookie: there is nothing to test guesses against.
        Some(Frame::Challenge(challenge)) => {
            assert_eq!(&challenge.node, a.local());
            assert_eq!(challenge.nonce.len(), 32);
        }
        other => panic!("expected a challenge, got {other:?}"),
    }
    client.send(Frame::Proof(Bytes::from_static(&[0; 32]))).await.unwrap();
    assert_eq!(next(&mut client).await, Some(Frame::Reject(RejectReason::NotAllowed)));
    assert_eq!(next(&mut client).await, None, "closed after the refusal");
    assert!(a.connected().is_empty());
}

/// The next frame from the node, or `None` once it has closed the connection.
async fn next(client: &mut Framed<TcpStream, FrameCodec>) -> Option<Frame> {
    let frame = tokio::time::timeout(DEADLINE, client.next()).await.expect("an answer in time");
    frame.map(|frame| frame.expect("framing").expect("a valid frame"))
}

/// Every test connection comes from 127.0.0.1, so the flood shares its source address with the node that joins:
/// the per-address limit must not lock that node out (see "Handshake" in docs/architecture.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_from_the_joiners_own_address_does_not_hold_up_its_join() {
    join_under_flood().await;
}

/// The same with every core busy: the flood, the joiner and the node all run late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_does_not_hold_up_a_join_with_every_core_busy() {
    let busy = noex_tests::load::BusyCores::all();
    join_under_flood().await;
    drop(busy);
}

/// Floods a node with idle connections from 127.0.0.1 and has another node join it meanwhile, within 1 s.
async fn join_under_flood() {
    const FLOODERS: usize = 4;
    const HELD: usize = 100;
    let a = node("a", &[]).await;
    let (opened, mut count) = watch::channel(0usize);
    let (stop, stopped) = watch::channel(false);
    let flood: Vec<_> = (0..FLOODERS)
        .map(|_| tokio::spawn(flood(a.local().address(), HELD, opened.clone(), stopped.clone())))
        .collect();
    tokio::time::timeout(DEADLINE, count.wait_for(|&opened| opened >= FLOODERS * HELD)).await.unwrap().unwrap();

    let (started, before) = (Instant::now(), *count.borrow());
    let b = node("b", &[a.local()]).await;
    wait_connected(&b, 1).await;
    let took = started.elapsed();
    let during = *count.borrow() - before;
    stop.send_replace(true);
    for flooder in flood {
        flooder.await.unwrap();
    }
    assert!(took < Duration::from_secs(1), "b joined after {took:?}, while {during} idle connections were opened");
    assert_eq!(a.connected(), [b.local().clone()]);
}

/// Opens idle connections to `address` in a loop, as fast as it can, holding the last `held` of them, until
/// `stop` says so; counts them in `opened`.
async fn flood(address: String, held: usize, opened: watch::Sender<usize>, mut stop: watch::Receiver<bool>) {
    let mut connections = VecDeque::with_capacity(held + 1);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            connected = TcpStream::connect(&address) => {
                if let Ok(stream) = connected {
                    connections.push_back(stream);
                    opened.send_modify(|opened| *opened += 1);
                    if connections.len() > held {
                        connections.pop_front();
                    }
                }
            }
        }
    }
}
