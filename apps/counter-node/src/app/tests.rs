//! The commands against in-process nodes, with the output kept in memory.

use noex_cluster::{ClusterConfig, ClusterEvent, Cookie};
use tokio::time::timeout;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

async fn node(name: &str, seeds: &[&NodeId]) -> Node {
    let mut config = ClusterConfig::new(name);
    config.port = 0;
    config.cookie = Some(Cookie::new("counter-node-unit-tests"));
    config.seeds = seeds.iter().map(|seed| seed.to_string()).collect();
    Node::start(config).await.expect("the node starts")
}

struct Harness {
    app: App,
    output: Output,
    downs: mpsc::UnboundedReceiver<CounterDown>,
}

impl Harness {
    async fn on(node: &Node) -> Self {
        let output = Output::memory();
        let (app, downs) = App::start(node.clone(), output.clone()).await.expect("the app starts");
        Harness { app, output, downs }
    }

    /// Runs `line` and returns what it printed.
    async fn run(&self, line: &str) -> Vec<String> {
        assert_eq!(self.app.handle(line).await, Flow::Continue, "{line}");
        self.output.take()
    }

    async fn down(&mut self) -> CounterDown {
        timeout(WAIT, self.downs.recv()).await.expect("a DOWN in time").expect("the watcher runs")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_on_this_node() {
    let node = node("local", &[]).await;
    let mut h = Harness::on(&node).await;
    let id = node.id().to_string();

    assert_eq!(h.run("/counters").await, ["No counters available. Use /create <name> to create one."]);
    assert_eq!(h.run("/create c").await, ["Counter \"c\" created locally with value 0."]);
    assert_eq!(h.run("/create c").await, ["Counter \"c\" already exists."]);
    assert_eq!(h.run(&format!("/create d on {id}")).await, ["Counter \"d\" created locally with value 0."]);
    assert_eq!(h.run("/create e on local").await, ["Counter \"e\" created locally with value 0."]);
    assert_eq!(h.run("/inc c 10").await, ["Counter \"c\" incremented by 10. New value: 10"]);
    assert_eq!(h.run("/dec c").await, ["Counter \"c\" decremented by 1. New value: 9"]);
    let max = i64::MAX;
    assert_eq!(
        h.run(&format!("/inc e {max}")).await,
        [format!("Counter \"e\" incremented by {max}. New value: {max}")]
    );
    assert_eq!(
        h.run("/inc e 1").await,
        [format!("Error: counter \"e\" unchanged at {max}: incrementing by 1 would overflow")],
        "an overflow is an error, and changes nothing"
    );
    assert!(h.run("/get e").await[0].starts_with(&format!("Counter \"e\": value={max},")));
    let get = h.run("/get c").await;
    assert!(get[0].starts_with("Counter \"c\": value=9, last updated at "), "{get:?}");
    assert_eq!(get[1], format!("  Location: {id}"));

    assert_eq!(h.run("/watch c").await, [format!("Now watching counter \"c\" on {id}")]);
    assert_eq!(h.run("/watch c").await, ["Already watching counter \"c\"."]);
    assert_eq!(
        h.run("/counters").await,
        [
            "Available counters:".to_owned(),
            format!("  - c (on {id}) [watched]"),
            format!("  - d (on {id})"),
            format!("  - e (on {id})")
        ]
    );
    assert_eq!(h.run("/unwatch c").await, ["Stopped watching counter \"c\"."]);
    assert_eq!(h.run("/unwatch c").await, ["Not watching counter \"c\"."]);

    assert_eq!(h.run("/get nope").await, ["Counter \"nope\" not found."]);
    assert_eq!(h.run("/inc nope").await, ["Counter \"nope\" not found."]);
    assert_eq!(h.run("/watch nope").await, ["Counter \"nope\" not found."]);
    assert_eq!(
        h.run("/create x on nowhere").await,
        ["Node not found: nowhere. Available nodes:".to_owned(), format!("  - {id}")]
    );
    assert_eq!(
        h.run("/nodes").await,
        ["Connected nodes:".to_owned(), format!("  - {id} (local)"), String::new(), "Total: 1 nodes".to_owned()]
    );
    assert_eq!(h.run("/inc c abc").await, ["Invalid amount: abc (expected an integer)"]);
    assert_eq!(h.run("nope").await, ["Unknown command: nope. Type /help for available commands."]);
    assert_eq!(h.run("").await, Vec::<String>::new());
    let help = h.run("/help").await;
    assert_eq!(help[..2], ["", "Distributed Counter Commands:"]);
    assert_eq!(
        help.last().map(String::as_str),
        Some("Demo: Create a counter on node2, watch it from node1, then kill node2.")
    );

    // A local counter can be watched, and its end is reported once.
    h.run("/watch c").await;
    let pid = node.registry().whereis("counter:c").unwrap();
    node.runtime().kill(&pid);
    let down = h.down().await;
    assert_eq!((down.name.as_str(), down.reason), ("c", ExitReason::Killed));
    assert_eq!(h.app.handle("/quit").await, Flow::Quit);
    h.app.stop().await;
    node.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_on_another_node() {
    let a = node("a", &[]).await;
    let mut events = a.cluster().events();
    let b = node("b", &[a.id()]).await;
    let _on_b = Harness::on(&b).await; // b hosts counters: its behaviour is registered by its app
    timeout(WAIT, async {
        while !matches!(events.recv().await, Ok(ClusterEvent::NodeUp(info)) if info.node == *b.id()) {}
    })
    .await
    .expect("b joins");
    let mut h = Harness::on(&a).await;
    let b_id = b.id().to_string();

    assert_eq!(
        h.run("/create r on b").await,
        [format!("Creating counter \"r\" on {b_id}..."), format!("Counter \"r\" created on {b_id} with value 0.")]
    );
    assert_eq!(h.run(&format!("/create r on {b_id}")).await, ["Counter \"r\" already exists."]);
    assert_eq!(h.run("/inc r 5").await, ["Counter \"r\" incremented by 5. New value: 5"]);
    let get = h.run("/get r").await;
    assert!(get[0].starts_with("Counter \"r\": value=5"), "the counter knows its name: {get:?}");
    assert_eq!(get[1], format!("  Location: {b_id}"));
    assert_eq!(h.run("/watch r").await, [format!("Now watching counter \"r\" on {b_id}")]);

    b.crash().await;
    let down = h.down().await;
    assert_eq!((down.name.as_str(), down.reason), ("r", ExitReason::NoConnection));
    h.app.stop().await;
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}
