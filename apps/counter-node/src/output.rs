//! Where the program's lines go: through rustyline's external printer while a terminal is being edited (so that
//! lines printed while the user types do not garble the prompt), else straight to stdout, flushed line by line.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A rustyline external printer, boxed so that this module does not name the terminal type.
pub(crate) type ExternalPrinter = Box<dyn rustyline::ExternalPrinter + Send>;

/// The program's output. Cheap to clone; lines from several tasks never interleave within a line.
#[derive(Clone)]
pub(crate) struct Output {
    sink: Arc<Mutex<Sink>>,
}

enum Sink {
    Stdout,
    Terminal(ExternalPrinter),
    #[cfg(test)]
    Memory(Vec<String>),
}

impl Output {
    /// Lines to stdout.
    pub(crate) fn stdout() -> Self {
        Self::with(Sink::Stdout)
    }

    /// Lines through `printer`; back to stdout for good if it fails.
    pub(crate) fn terminal(printer: ExternalPrinter) -> Self {
        Self::with(Sink::Terminal(printer))
    }

    /// Prints one line (or a block of lines).
    pub(crate) fn line(&self, text: impl std::fmt::Display) {
        let text = text.to_string();
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *sink {
            Sink::Stdout => print_stdout(&text),
            Sink::Terminal(printer) => {
                // The printer adds no newline when it writes directly (between two prompts).
                if let Err(error) = printer.print(format!("{text}\n")) {
                    tracing::warn!(%error, "the terminal printer failed; printing to stdout");
                    *sink = Sink::Stdout;
                    print_stdout(&text);
                }
            }
            #[cfg(test)]
            Sink::Memory(lines) => lines.extend(text.lines().map(str::to_owned)),
        }
    }

    fn with(sink: Sink) -> Self {
        Output { sink: Arc::new(Mutex::new(sink)) }
    }
}

#[cfg(test)]
impl Output {
    /// An output that keeps its lines, for tests.
    pub(crate) fn memory() -> Self {
        Self::with(Sink::Memory(Vec::new()))
    }

    /// The lines printed since the last call.
    pub(crate) fn take(&self) -> Vec<String> {
        match &mut *self.sink.lock().unwrap() {
            Sink::Memory(lines) => std::mem::take(lines),
            _ => panic!("not a memory output"),
        }
    }
}

fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // Nothing sensible to do if stdout is gone (a closed pipe): the program goes on and exits normally.
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}
