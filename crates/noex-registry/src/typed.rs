//! The registry as typed code meets it: a typed reference by global name, and a [`Registrar`] that gives a
//! process (a supervised child, say) its global name before its `init` runs.

use noex_core::{Encodable, GenServer, Registrar, ServerRef, StartError};

use crate::{GlobalRegistry, RegisterError};

impl GlobalRegistry {
    /// A typed reference to the process registered as `name`, wherever it runs (Erlang's `global:whereis_name`
    /// with the server's type): local references move values, remote ones encode them. `None` if the name is
    /// free. The type is the caller's claim: a process of another type on another node answers calls with `Decode`
    /// errors, and one on this node is reached as no process at all (`NoProc`).
    pub fn whereis_ref<S>(&self, name: &str) -> Option<ServerRef<S>>
    where
        S: GenServer,
        S::Call: Encodable,
        S::Cast: Encodable,
        S::Reply: Encodable,
    {
        let pid = self.whereis(name)?;
        Some(self.runtime()?.remote_ref(&pid))
    }

    /// Registers processes under the global `name` as they start: give it to
    /// [`ChildSpec::registered`](noex_core::ChildSpec::registered) (every restart takes the name again; the
    /// ended predecessor's registration does not stand in the way) or
    /// [`StartOptions::registered`](noex_core::StartOptions::registered). A name held by another live process
    /// fails the start with [`StartError::NameTaken`].
    pub fn registrar(&self, name: impl Into<String>) -> Registrar {
        let registry = self.clone();
        let name = name.into();
        Registrar::new(move |pid| match registry.register(&name, pid) {
            Ok(()) => Ok(()),
            Err(RegisterError::NameTaken { name, holder }) => Err(StartError::NameTaken { name, holder }),
            Err(other) => Err(StartError::Registration(other.to_string())),
        })
    }
}
