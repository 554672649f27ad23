//! The watcher: a local process that monitors counters (on any node) and reports each one's end once.

use std::collections::BTreeMap;

use noex_core::{Context, ExitReason, GenServer, Info, MonitorRef, Pid};
use tokio::sync::mpsc;

/// A watched counter ended (or its node was lost); it is no longer watched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CounterDown {
    /// The counter's name.
    pub(crate) name: String,
    /// The process that ended.
    pub(crate) pid: Pid,
    /// Why.
    pub(crate) reason: ExitReason,
}

/// What the watcher is asked (by this node only: its messages are not encodable).
#[derive(Debug)]
pub(crate) enum Request {
    /// Monitor the counter `name`, the process `pid`.
    Watch { name: String, pid: Pid },
    /// Stop monitoring the counter `name`.
    Unwatch { name: String },
    /// The counters watched now.
    Watched,
}

/// The watcher's answers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Whether the request changed something: false for a counter already watched (`Watch`) or not watched
    /// (`Unwatch`).
    Done(bool),
    /// The counters watched, by name (sorted), with the process watched under each name.
    Watched(Vec<(String, Pid)>),
}

/// Monitors counters by name; sends a [`CounterDown`] for each monitor that fires.
pub(crate) struct Watcher {
    watched: BTreeMap<String, (Pid, MonitorRef)>,
    downs: mpsc::UnboundedSender<CounterDown>,
}

impl Watcher {
    /// A watcher and the channel its reports arrive on.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<CounterDown>) {
        let (downs, received) = mpsc::unbounded_channel();
        (Watcher { watched: BTreeMap::new(), downs }, received)
    }
}

impl GenServer for Watcher {
    type Call = Request;
    type Reply = Reply;
    type Cast = ();

    async fn handle_call(&mut self, request: Request, ctx: &mut Context<Self>) -> Reply {
        match request {
            Request::Watch { name, pid } => {
                if self.watched.contains_key(&name) {
                    return Reply::Done(false);
                }
                let monitor = ctx.monitor(&pid);
                self.watched.insert(name, (pid, monitor));
                Reply::Done(true)
            }
            Request::Unwatch { name } => match self.watched.remove(&name) {
                Some((_, monitor)) => {
                    ctx.demonitor(&monitor);
                    Reply::Done(true)
                }
                None => Reply::Done(false),
            },
            Request::Watched => {
                Reply::Watched(self.watched.iter().map(|(name, (pid, _))| (name.clone(), pid.clone())).collect())
            }
        }
    }

    async fn handle_info(&mut self, info: Info, _ctx: &mut Context<Self>) {
        let Info::Down(down) = info else { return };
        let Some(name) = self.watched.iter().find(|(_, (_, monitor))| *monitor == down.monitor).map(|(n, _)| n.clone())
        else {
            return;
        };
        self.watched.remove(&name);
        tracing::debug!(counter = %name, pid = %down.pid, reason = %down.reason, "watched counter down");
        let _ = self.downs.send(CounterDown { name, pid: down.pid, reason: down.reason });
    }
}

#[cfg(test)]
mod tests {
    use noex_core::Runtime;

    use super::*;
    use crate::counter::Counter;

    #[tokio::test]
    async fn a_watched_counter_is_reported_once_when_it_ends() {
        let runtime = Runtime::new();
        let (watcher, mut downs) = Watcher::new();
        let watcher = runtime.start(watcher).await.unwrap();
        let a = runtime.start(Counter::new("a".into(), 0)).await.unwrap();
        let b = runtime.start(Counter::new("b".into(), 0)).await.unwrap();

        let watch = |name: &str, pid: &Pid| Request::Watch { name: name.into(), pid: pid.clone() };
        assert_eq!(watcher.call(watch("a", a.pid())).await, Ok(Reply::Done(true)));
        assert_eq!(watcher.call(watch("a", a.pid())).await, Ok(Reply::Done(false)), "already watched");
        assert_eq!(watcher.call(watch("b", b.pid())).await, Ok(Reply::Done(true)));
        let both = vec![("a".into(), a.pid().clone()), ("b".into(), b.pid().clone())];
        assert_eq!(watcher.call(Request::Watched).await, Ok(Reply::Watched(both)));

        assert_eq!(watcher.call(Request::Unwatch { name: "b".into() }).await, Ok(Reply::Done(true)));
        assert_eq!(watcher.call(Request::Unwatch { name: "b".into() }).await, Ok(Reply::Done(false)));
        runtime.kill(b.pid());
        runtime.kill(a.pid());

        let down = downs.recv().await.unwrap();
        assert_eq!((down.name.as_str(), &down.pid, down.reason), ("a", a.pid(), ExitReason::Killed));
        assert_eq!(watcher.call(Request::Watched).await, Ok(Reply::Watched(vec![])));
        assert!(downs.try_recv().is_err(), "no DOWN for an unwatched counter");
    }
}
