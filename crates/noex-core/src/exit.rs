//! Why a process ended.

use std::fmt;
use std::sync::Arc;

/// The reason a process exited, as carried by monitors (`DOWN`), links (`EXIT`) and lifecycle events.
///
/// The first four are what a process itself can end with; `NoProc` and `NoConnection` are what a monitor reports
/// when it cannot observe the real end (the target was already gone, or its node was lost).
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitReason {
    /// The process finished its work. Does not propagate over links.
    Normal,
    /// The process was asked to stop (by its supervisor or `stop`).
    Shutdown,
    /// The process was killed unconditionally; it ran no cleanup callback.
    Killed,
    /// The process crashed: a panic, a failed `init`, or an explicit error.
    Error(Arc<str>),
    /// The monitored process did not exist when the monitor was set up.
    NoProc,
    /// The node hosting the process was lost.
    NoConnection,
}

impl ExitReason {
    /// An `error(message)` reason.
    pub fn error(message: impl Into<Arc<str>>) -> Self {
        ExitReason::Error(message.into())
    }

    /// True for `normal`: the only reason that does not kill linked processes.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }

    /// True for reasons a `transient` child is not restarted for (`normal` and `shutdown`), as in OTP.
    pub fn is_clean(&self) -> bool {
        matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }

    /// The reason's kind as a short word: `normal`, `shutdown`, `killed`, `error`, `noproc`, `noconnection`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExitReason::Normal => "normal",
            ExitReason::Shutdown => "shutdown",
            ExitReason::Killed => "killed",
            ExitReason::Error(_) => "error",
            ExitReason::NoProc => "noproc",
            ExitReason::NoConnection => "noconnection",
        }
    }

    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_owned()
        };
        ExitReason::error(format!("panic: {message}"))
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Error(message) => write!(f, "error({message})"),
            other => f.write_str(other.kind()),
        }
    }
}

impl fmt::Debug for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_erlang_words() {
        assert_eq!(ExitReason::Normal.to_string(), "normal");
        assert_eq!(ExitReason::NoConnection.to_string(), "noconnection");
        assert_eq!(ExitReason::error("boom").to_string(), "error(boom)");
    }

    #[test]
    fn panic_payloads_become_error_messages() {
        let from_str: Box<dyn std::any::Any + Send> = Box::new("bad");
        let from_string: Box<dyn std::any::Any + Send> = Box::new(String::from("worse"));
        assert_eq!(ExitReason::from_panic(&*from_str), ExitReason::error("panic: bad"));
        assert_eq!(ExitReason::from_panic(&*from_string), ExitReason::error("panic: worse"));
    }
}
