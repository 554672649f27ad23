//! Where the program's lines go: through rustyline's external printer while a terminal is being edited (so that
//! lines printed while the user types do not garble the prompt), else straight to stdout, flushed line by line.
//!
//! The external printer can block (rustyline takes its lines only while it waits for a key: not during a
//! completion listing or a history search), so lines for it are handed to a printer thread of its own over an
//! unbounded channel: printing never blocks a task, never holds a lock.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// A rustyline external printer, boxed so that this module does not name the terminal type.
pub(crate) type ExternalPrinter = Box<dyn rustyline::ExternalPrinter + Send>;

/// The program's output. Cheap to clone; lines from several tasks never interleave within a line.
#[derive(Clone)]
pub(crate) struct Output {
    sink: Arc<Sink>,
}

enum Sink {
    Stdout,
    Printer(mpsc::Sender<Line>),
    #[cfg(test)]
    Memory(std::sync::Mutex<Vec<String>>),
}

enum Line {
    Text(String),
    /// Everything sent before has been printed: answer on this channel.
    Flush(mpsc::Sender<()>),
}

impl Output {
    /// Lines to stdout.
    pub(crate) fn stdout() -> Self {
        Output { sink: Arc::new(Sink::Stdout) }
    }

    /// Lines through `printer`, from a thread of their own; to stdout if that thread cannot start.
    pub(crate) fn terminal(printer: ExternalPrinter) -> Self {
        let (lines, received) = mpsc::channel();
        let started = std::thread::Builder::new().name("printer".into()).spawn(move || print_lines(printer, &received));
        match started {
            Ok(_) => Output { sink: Arc::new(Sink::Printer(lines)) },
            Err(error) => {
                tracing::error!(%error, "cannot start the printer thread; printing to stdout");
                Self::stdout()
            }
        }
    }

    /// Prints one line (or a block of lines). Never blocks for long.
    pub(crate) fn line(&self, text: impl std::fmt::Display) {
        match &*self.sink {
            Sink::Stdout => print_stdout(&text.to_string()),
            Sink::Printer(lines) => {
                if let Err(mpsc::SendError(Line::Text(text))) = lines.send(Line::Text(text.to_string())) {
                    print_stdout(&text);
                }
            }
            #[cfg(test)]
            Sink::Memory(lines) => {
                lines.lock().unwrap_or_else(|p| p.into_inner()).extend(text.to_string().lines().map(str::to_owned))
            }
        }
    }

    /// Waits (at most `timeout`) until every line sent so far is printed: before the program exits.
    pub(crate) fn flush(&self, timeout: Duration) {
        if let Sink::Printer(lines) = &*self.sink {
            let (done, flushed) = mpsc::channel();
            if lines.send(Line::Flush(done)).is_ok() {
                let _ = flushed.recv_timeout(timeout);
            }
        }
    }
}

/// The printer thread. If the terminal printer fails, the rest goes to stdout.
fn print_lines(mut printer: ExternalPrinter, lines: &mpsc::Receiver<Line>) {
    let mut terminal = true;
    for line in lines {
        match line {
            Line::Text(text) if terminal => {
                // The printer adds no newline when it writes directly (between two prompts).
                if let Err(error) = printer.print(format!("{text}\n")) {
                    tracing::warn!(%error, "the terminal printer failed; printing to stdout");
                    terminal = false;
                    print_stdout(&text);
                }
            }
            Line::Text(text) => print_stdout(&text),
            Line::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
impl Output {
    /// An output that keeps its lines, for tests.
    pub(crate) fn memory() -> Self {
        Output { sink: Arc::new(Sink::Memory(std::sync::Mutex::default())) }
    }

    /// The lines printed since the last call.
    pub(crate) fn take(&self) -> Vec<String> {
        match &*self.sink {
            Sink::Memory(lines) => std::mem::take(&mut *lines.lock().unwrap()),
            _ => panic!("not a memory output"),
        }
    }
}

/// Writes a line to stdout and flushes it. Nothing sensible to do if stdout is gone (a closed pipe): the
/// program goes on and exits normally.
pub(crate) fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}
