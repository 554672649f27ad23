//! The counter: a `GenServer` whose messages are prost messages, so that any node of the cluster can spawn it,
//! call it and cast to it.

use std::time::{SystemTime, UNIX_EPOCH};

use noex_core::{Context, GenServer};
use noex_remote::Behaviours;

/// The name other nodes spawn counters by (the same on every node).
pub(crate) const BEHAVIOUR: &str = "distributed-counter:counter";

/// Counters are registered in the global registry under this prefix and their name.
const PREFIX: &str = "counter:";

/// The global name of the counter called `name`.
pub(crate) fn global_name(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The counter name in a global name, if it is a counter's.
pub(crate) fn counter_name(global: &str) -> Option<&str> {
    global.strip_prefix(PREFIX)
}

/// Init arguments of the [`BEHAVIOUR`].
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CounterArgs {
    /// The counter's name (without the global prefix).
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    /// Its initial value.
    #[prost(int64, tag = "2")]
    pub(crate) initial: i64,
}

/// The one call: what the counter knows about itself.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetInfo {}

/// The reply to [`GetInfo`].
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CounterInfo {
    /// The counter's name.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    /// Its value.
    #[prost(int64, tag = "2")]
    pub(crate) value: i64,
    /// When it last changed (or was created), in milliseconds since the Unix epoch, by its node's clock.
    #[prost(int64, tag = "3")]
    pub(crate) last_updated_ms: i64,
}

/// A cast: a change of the value.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Update {
    /// The change; a cast without one changes nothing.
    #[prost(oneof = "Change", tags = "1, 2")]
    pub(crate) change: Option<Change>,
}

/// How an [`Update`] changes the value. A change past the range of an `i64` is refused (the value stays as it
/// was): a counter neither wraps around nor clamps silently.
#[derive(Clone, Copy, PartialEq, Eq, prost::Oneof)]
pub(crate) enum Change {
    /// Adds this much.
    #[prost(int64, tag = "1")]
    Increment(i64),
    /// Subtracts this much.
    #[prost(int64, tag = "2")]
    Decrement(i64),
}

impl Change {
    /// The value after this change to `value`, if it stays in range.
    pub(crate) fn apply(self, value: i64) -> Option<i64> {
        match self {
            Change::Increment(by) => value.checked_add(by),
            Change::Decrement(by) => value.checked_sub(by),
        }
    }
}

impl From<Change> for Update {
    fn from(change: Change) -> Self {
        Update { change: Some(change) }
    }
}

/// A named counter.
#[derive(Debug)]
pub(crate) struct Counter {
    name: String,
    value: i64,
    last_updated_ms: i64,
}

impl Counter {
    /// A counter called `name`, starting at `value`, updated now.
    pub(crate) fn new(name: String, value: i64) -> Self {
        Counter { name, value, last_updated_ms: now_ms() }
    }
}

impl GenServer for Counter {
    type Call = GetInfo;
    type Reply = CounterInfo;
    type Cast = Update;

    async fn handle_call(&mut self, _: GetInfo, _ctx: &mut Context<Self>) -> CounterInfo {
        CounterInfo { name: self.name.clone(), value: self.value, last_updated_ms: self.last_updated_ms }
    }

    async fn handle_cast(&mut self, update: Update, _ctx: &mut Context<Self>) {
        let Some(change) = update.change else { return };
        // A cast has nobody to answer: a refused change is logged (the REPL checks before it sends one).
        let Some(value) = change.apply(self.value) else {
            tracing::warn!(counter = %self.name, value = self.value, ?change, "change refused: out of range");
            return;
        };
        self.value = value;
        self.last_updated_ms = now_ms();
    }
}

/// Lets other nodes spawn counters on this one.
pub(crate) fn register(behaviours: &Behaviours) {
    behaviours.register(BEHAVIOUR, |args: CounterArgs| Ok(Counter::new(args.name, args.initial)));
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use noex_core::Runtime;

    use super::*;

    #[test]
    fn global_names_carry_the_prefix() {
        assert_eq!(global_name("a"), "counter:a");
        assert_eq!(counter_name("counter:a"), Some("a"));
        assert_eq!(counter_name("other:a"), None);
    }

    #[tokio::test]
    async fn updates_change_the_value_and_are_refused_out_of_range() {
        let counter = Runtime::new().start(Counter::new("c".into(), 0)).await.unwrap();
        counter.cast(Change::Increment(10).into());
        counter.cast(Change::Decrement(3).into());
        counter.cast(Update { change: None });
        let info = counter.call(GetInfo {}).await.unwrap();
        assert_eq!((info.name.as_str(), info.value), ("c", 7));
        assert!(info.last_updated_ms > 0);

        counter.cast(Change::Increment(i64::MAX).into());
        assert_eq!(counter.call(GetInfo {}).await.unwrap().value, 7, "refused, unchanged");
        counter.cast(Change::Increment(i64::MAX - 7).into());
        counter.cast(Change::Increment(1).into());
        assert_eq!(counter.call(GetInfo {}).await.unwrap().value, i64::MAX);
    }
}
