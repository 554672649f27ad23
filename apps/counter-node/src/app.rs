//! The commands, run against the node: counters are found cluster-wide through the global registry and reached
//! wherever they live with the same typed reference; the watcher monitors them.

use std::time::Duration;

use anyhow::Context as _;
use noex_cluster::NodeId;
use noex_core::{ExitReason, Pid, ServerRef, StartOptions};
use noex_remote::{Node, SpawnError, SpawnOptions};
use tokio::sync::mpsc;

use crate::command::{self, Command, Direction};
use crate::counter::{self, BEHAVIOUR, Change, Counter, CounterArgs, GetInfo};
use crate::messages;
use crate::output::Output;
use crate::watcher::{CounterDown, Reply, Request, Watcher};

/// How long a call (or a spawn) may take before it is reported as an error.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the REPL goes on after a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next line.
    Continue,
    /// Leave.
    Quit,
}

/// The program's state on top of the node: the node, the watcher, the output.
pub(crate) struct App {
    node: Node,
    watcher: ServerRef<Watcher>,
    output: Output,
}

impl App {
    /// Lets other nodes spawn counters here, and starts the watcher; returns the app and the watcher's reports.
    pub(crate) async fn start(
        node: Node,
        output: Output,
    ) -> anyhow::Result<(App, mpsc::UnboundedReceiver<CounterDown>)> {
        counter::register(node.remote().behaviours());
        let (watcher, downs) = Watcher::new();
        let watcher = node
            .runtime()
            .start_with(watcher, StartOptions::default().system())
            .await
            .context("cannot start the watcher")?;
        Ok((App { node, watcher, output }, downs))
    }

    /// Runs one line typed by the user: prints what it did, or the one line saying why it did nothing.
    pub(crate) async fn handle(&self, line: &str) -> Flow {
        match command::parse(line) {
            Ok(None) => {}
            Ok(Some(Command::Quit)) => return Flow::Quit,
            Ok(Some(command)) => {
                if let Err(error) = self.execute(command).await {
                    self.output.line(format!("Error: {error:#}"));
                }
            }
            Err(error) => self.output.line(error),
        }
        Flow::Continue
    }

    /// Stops the watcher: its monitors go with it.
    pub(crate) async fn stop(&self) {
        if let Err(error) = self.watcher.stop(ExitReason::Shutdown, CALL_TIMEOUT).await {
            tracing::warn!(%error, "the watcher did not stop cleanly");
        }
    }

    async fn execute(&self, command: Command) -> anyhow::Result<()> {
        match command {
            Command::Help => self.output.line(command::HELP),
            Command::Create { name, on } => self.create(&name, on.as_deref()).await?,
            Command::Update { name, direction, amount } => self.update(&name, direction, amount).await?,
            Command::Get { name } => self.get(&name).await?,
            Command::Watch { name } => self.watch(&name).await?,
            Command::Unwatch { name } => {
                let was_watched = self.ask_watcher(Request::Unwatch { name: name.clone() }).await? == Reply::Done(true);
                self.output.line(messages::unwatched(&name, was_watched));
            }
            Command::Counters => self.counters().await?,
            Command::Nodes => {
                let others: Vec<_> = self.node.cluster().nodes().into_iter().map(|(n, s)| (n.node, s)).collect();
                self.output.line(messages::nodes(self.node.id(), &others));
            }
            Command::Quit => {}
        }
        Ok(())
    }

    async fn create(&self, name: &str, on: Option<&str>) -> anyhow::Result<()> {
        let global = counter::global_name(name);
        if self.node.registry().is_registered(&global) {
            self.output.line(messages::already_exists(name));
            return Ok(());
        }
        let target = match on {
            None => self.node.id().clone(),
            Some(wanted) => {
                // One list, searched and (if need be) shown.
                let nodes = self.nodes();
                match nodes.iter().find(|id| id.as_str() == wanted || id.name() == wanted) {
                    Some(target) => target.clone(),
                    None => {
                        self.output.line(messages::node_not_found(wanted, &nodes));
                        return Ok(());
                    }
                }
            }
        };
        let remote = (target != *self.node.id()).then_some(&target);
        if let Some(target) = remote {
            self.output.line(messages::creating(name, target));
        }
        let args = CounterArgs { name: name.to_owned(), initial: 0 };
        let options = SpawnOptions::global(global).args(&args).timeout(CALL_TIMEOUT);
        match self.node.remote().spawn(BEHAVIOUR, &target, options).await {
            Ok(_) => self.output.line(messages::created(name, remote)),
            Err(SpawnError::NameTaken(_)) => self.output.line(messages::already_exists(name)),
            Err(error) => return Err(error).with_context(|| format!("cannot create counter \"{name}\" on {target}")),
        }
        Ok(())
    }

    async fn update(&self, name: &str, direction: Direction, amount: i64) -> anyhow::Result<()> {
        let Some(counter) = self.counter(name) else { return Ok(()) };
        let change = match direction {
            Direction::Increment => Change::Increment(amount),
            Direction::Decrement => Change::Decrement(amount),
        };
        // Checked first, so that a change out of range is an error here rather than a refusal nobody sees (the
        // counter refuses it too, should another node change the value in between).
        let before = counter.call_timeout(GetInfo {}, CALL_TIMEOUT).await.with_context(|| unreachable(name))?;
        if change.apply(before.value).is_none() {
            anyhow::bail!("{}", messages::out_of_range(name, direction, amount, before.value));
        }
        // A cast, then a call on the same reference: the call is handled after the cast, so it sees the change.
        counter.cast(change.into());
        let info = counter.call_timeout(GetInfo {}, CALL_TIMEOUT).await.with_context(|| unreachable(name))?;
        self.output.line(messages::updated(name, direction, amount, info.value));
        Ok(())
    }

    async fn get(&self, name: &str) -> anyhow::Result<()> {
        let Some(counter) = self.counter(name) else { return Ok(()) };
        let info = counter.call_timeout(GetInfo {}, CALL_TIMEOUT).await.with_context(|| unreachable(name))?;
        self.output.line(messages::info(&info, counter.pid().node()));
        Ok(())
    }

    async fn watch(&self, name: &str) -> anyhow::Result<()> {
        let Some(pid) = self.find(name) else { return Ok(()) };
        let location = pid.node().clone();
        match self.ask_watcher(Request::Watch { name: name.to_owned(), pid }).await? {
            Reply::Done(true) => self.output.line(messages::watching(name, location)),
            _ => self.output.line(messages::already_watching(name)),
        }
        Ok(())
    }

    async fn counters(&self) -> anyhow::Result<()> {
        let Reply::Watched(watched) = self.ask_watcher(Request::Watched).await? else {
            anyhow::bail!("the watcher answered something else");
        };
        let counters: Vec<(String, String, bool)> = self
            .node
            .registry()
            .entries()
            .into_iter()
            .filter_map(|entry| {
                let name = counter::counter_name(&entry.name)?.to_owned();
                // The very process, not just the name: after a conflict the name may hold another counter.
                let watched = watched.iter().any(|(watched, pid)| *watched == name && *pid == entry.pid);
                Some((name, entry.pid.node().to_string(), watched))
            })
            .collect();
        self.output.line(messages::counters(&counters));
        Ok(())
    }

    /// The counter called `name`, wherever it runs; prints that it does not exist if it does not.
    fn find(&self, name: &str) -> Option<Pid> {
        let pid = self.node.registry().whereis(&counter::global_name(name));
        if pid.is_none() {
            self.output.line(messages::not_found(name));
        }
        pid
    }

    fn counter(&self, name: &str) -> Option<ServerRef<Counter>> {
        self.find(name).map(|pid| self.node.runtime().remote_ref::<Counter>(&pid))
    }

    /// This node, then the connected ones.
    fn nodes(&self) -> Vec<NodeId> {
        std::iter::once(self.node.id().clone()).chain(self.node.cluster().connected()).collect()
    }

    async fn ask_watcher(&self, request: Request) -> anyhow::Result<Reply> {
        self.watcher.call_timeout(request, CALL_TIMEOUT).await.context("the watcher did not answer")
    }
}

fn unreachable(name: &str) -> String {
    format!("counter \"{name}\" did not answer")
}

#[cfg(test)]
mod tests;
