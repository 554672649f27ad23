//! What a distributed supervisor is told: its strategy, its restart intensity, its node selector, and its
//! children, each a behaviour that remote spawn can start on any node (the allow-list of `Behaviours`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use noex_core::{Encodable, Restart};

use crate::NodeSelector;

/// Which children a distributed supervisor restarts when one ends and must be restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Only that child.
    OneForOne,
    /// All children: the others are stopped (in reverse order), then all are started again (in order).
    OneForAll,
    /// That child and the children started after it.
    RestForOne,
    /// Only that child; every child comes from one template, started with [`start_child`] and its own arguments.
    ///
    /// [`start_child`]: crate::DistSupervisorRef::start_child
    SimpleOneForOne,
}

/// One child: a behaviour by name, its init arguments, and how it is placed and restarted.
#[derive(Clone, Debug)]
pub struct DistChildSpec {
    pub(crate) id: Arc<str>,
    pub(crate) behaviour: Arc<str>,
    pub(crate) args: Bytes,
    pub(crate) restart: Restart,
    pub(crate) selector: Option<NodeSelector>,
    pub(crate) shutdown: Duration,
}

impl DistChildSpec {
    /// A child started from `behaviour` (registered with `Behaviours::register` on every node that may host it),
    /// with no init arguments (`()`). Permanent, placed by the supervisor's selector, 5 s to shut down.
    pub fn new(id: impl Into<Arc<str>>, behaviour: impl Into<Arc<str>>) -> Self {
        DistChildSpec {
            id: id.into(),
            behaviour: behaviour.into(),
            args: Bytes::new(),
            restart: Restart::Permanent,
            selector: None,
            shutdown: Duration::from_secs(5),
        }
    }

    /// Sets the init arguments, decoded by the behaviour's factory at every (re)start, wherever it runs.
    pub fn args(mut self, args: &impl Encodable) -> Self {
        self.args = args.encode_wire();
        self
    }

    /// Sets the restart type. A child whose node is lost ended abnormally: `transient` children restart too.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Places this child with `selector` instead of the supervisor's.
    pub fn selector(mut self, selector: NodeSelector) -> Self {
        self.selector = Some(selector);
        self
    }

    /// How long the child gets to stop (its `terminate`) before it is killed.
    pub fn shutdown(mut self, timeout: Duration) -> Self {
        self.shutdown = timeout;
        self
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A distributed supervisor's configuration.
#[derive(Clone, Debug)]
pub struct DistSupervisorSpec {
    /// Which children to restart.
    pub strategy: Strategy,
    /// At most this many restarts...
    pub max_restarts: u32,
    /// ...within this window; one more and the supervisor stops its children and exits with `shutdown`.
    pub within: Duration,
    /// Where children go unless their spec says otherwise.
    pub selector: NodeSelector,
    /// The children, in start order (none for [`Strategy::SimpleOneForOne`]).
    pub children: Vec<DistChildSpec>,
    /// The template of [`Strategy::SimpleOneForOne`]'s children (its id is the prefix of theirs).
    pub template: Option<DistChildSpec>,
    /// A name makes the supervision outlive its process: every child is registered globally as
    /// `dsup:<name>:<child id>` (before its `init`), and a supervisor started under the same name (on any node,
    /// after the first one's node died) adopts the children that still run instead of starting them again. The
    /// global registry makes a second copy of a child impossible: its start fails, and the running one is adopted.
    pub name: Option<String>,
    /// Where [`NodeSelector::LeastLoaded`] finds the nodes' loads: this node's cluster observer, which asks every
    /// node's observer service for its count of user processes (see the crate docs). Without one, the load of a
    /// node is the number of this supervisor's children there.
    pub observer: Option<noex_observer::ClusterObserver>,
}

impl DistSupervisorSpec {
    /// A spec with noex's defaults: 3 restarts in 5 s, children placed `LocalFirst`, none yet.
    pub fn new(strategy: Strategy) -> Self {
        DistSupervisorSpec {
            strategy,
            max_restarts: 3,
            within: Duration::from_secs(5),
            selector: NodeSelector::LocalFirst,
            children: Vec::new(),
            template: None,
            name: None,
            observer: None,
        }
    }

    /// Adds a child.
    pub fn child(mut self, child: DistChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Sets the restart intensity.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// Sets the default node selector.
    pub fn selector(mut self, selector: NodeSelector) -> Self {
        self.selector = selector;
        self
    }

    /// Names the supervision (see [`DistSupervisorSpec::name`]).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Gives `LeastLoaded` the nodes' real loads (see [`DistSupervisorSpec::observer`]).
    pub fn observer(mut self, observer: noex_observer::ClusterObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sets the template of a [`Strategy::SimpleOneForOne`] supervisor.
    pub fn template(mut self, template: DistChildSpec) -> Self {
        self.template = Some(template);
        self
    }
}
