//! The REPL's input: rustyline on its own OS thread, one line at a time, handed to the async side.
//!
//! The thread reads a line only when the async side asks for one ([`Repl::next`]), so a command's output is
//! printed before the next prompt. With a terminal on stdin, lines printed meanwhile go through rustyline's
//! external printer, above the prompt being edited; the terminal's settings are saved at start and restored at
//! exit, since a signal can end the program while a line is being edited (raw mode). Otherwise (piped input)
//! rustyline reads plain lines and no prompt is shown.

use std::io::{BufRead, IsTerminal};
use std::sync::mpsc as sync_mpsc;

use rustyline::config::Configurer;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};
use tokio::sync::mpsc;

use crate::completion::{Candidates, ReplHelper};
use crate::output::Output;

/// What the user did.
#[derive(Debug)]
pub(crate) enum Input {
    /// Typed a line (without its newline).
    Line(String),
    /// Pressed Ctrl+C at the prompt.
    Interrupted,
    /// Closed the input (Ctrl+D, or the end of piped input).
    Eof,
    /// Typed something that is not text (invalid UTF-8); the next line may be fine.
    Unreadable(String),
    /// The input could not be read.
    Failed(String),
}

/// The async side's handle on the reader thread.
pub(crate) struct Repl {
    wanted: sync_mpsc::Sender<()>,
    inputs: mpsc::UnboundedReceiver<Input>,
    /// A line was asked for and has not been returned yet.
    asked: bool,
    /// The terminal's settings before the line editor touched them.
    terminal: Option<terminal::Saved>,
}

impl Repl {
    /// Starts the reader thread; returns it with the output to print through (the terminal's external printer
    /// when there is one). Nothing is read before the first [`next`](Self::next).
    pub(crate) async fn start(candidates: Candidates) -> (Repl, Output) {
        let (wanted, wanted_rx) = sync_mpsc::channel();
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let (output_tx, output_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("repl".into())
            .spawn(move || read_lines(candidates, output_tx, &wanted_rx, &inputs_tx));
        let output = match spawned {
            Ok(_) => output_rx.await.unwrap_or_else(|_| Output::stdout()),
            Err(error) => {
                tracing::error!(%error, "cannot start the input thread");
                Output::stdout()
            }
        };
        (Repl { wanted, inputs, asked: false, terminal: terminal::save() }, output)
    }

    /// Puts the terminal back as it was before the program started: the program may exit while the reader
    /// thread is still editing a line (after a signal), with the terminal in raw mode.
    pub(crate) fn restore_terminal(&self) {
        if let Some(saved) = &self.terminal {
            saved.restore();
        }
    }

    /// Reads the next input. Cancel safe: a line read after the future was dropped is returned by the next call.
    pub(crate) async fn next(&mut self) -> Input {
        // At most one line is asked for at a time: the thread waits for each request before it reads.
        if !self.asked {
            if self.wanted.send(()).is_err() {
                return Input::Eof;
            }
            self.asked = true;
        }
        let input = self.inputs.recv().await.unwrap_or(Input::Eof);
        self.asked = false;
        input
    }
}

/// The reader thread: one line per request, until the input ends or the async side is gone.
fn read_lines(
    candidates: Candidates,
    output: tokio::sync::oneshot::Sender<Output>,
    wanted: &sync_mpsc::Receiver<()>,
    inputs: &mpsc::UnboundedSender<Input>,
) {
    let interactive = std::io::stdin().is_terminal();
    let config = Config::builder().completion_type(CompletionType::List).auto_add_history(true).build();
    let mut editor = match Editor::<ReplHelper, DefaultHistory>::with_config(config) {
        Ok(editor) => editor,
        Err(error) => {
            tracing::warn!(%error, "no line editor; reading plain lines");
            let _ = output.send(Output::stdout());
            return read_plain_lines(wanted, inputs);
        }
    };
    editor.set_helper(Some(ReplHelper::new(candidates)));
    editor.set_max_history_size(1000).ok();
    let printer = if interactive { editor.create_external_printer().ok() } else { None };
    let _ = output.send(match printer {
        Some(printer) => Output::terminal(Box::new(printer)),
        None => Output::stdout(),
    });
    // Without a terminal rustyline shows no prompt, except for terminals it does not support, where it would
    // print this one before every line of piped output.
    let prompt = if interactive { "> " } else { "" };
    while wanted.recv().is_ok() {
        let input = match editor.readline(prompt) {
            Ok(line) => Input::Line(line),
            Err(ReadlineError::Interrupted) => Input::Interrupted,
            Err(ReadlineError::Eof) => Input::Eof,
            Err(ReadlineError::Io(error)) if error.kind() == std::io::ErrorKind::InvalidData => {
                Input::Unreadable(error.to_string())
            }
            Err(error) => Input::Failed(error.to_string()),
        };
        let last = !matches!(input, Input::Line(_) | Input::Unreadable(_));
        if inputs.send(input).is_err() || last {
            return;
        }
    }
}

fn read_plain_lines(wanted: &sync_mpsc::Receiver<()>, inputs: &mpsc::UnboundedSender<Input>) {
    let mut lines = std::io::stdin().lock().lines();
    while wanted.recv().is_ok() {
        let input = match lines.next() {
            Some(Ok(line)) => Input::Line(line),
            Some(Err(error)) if error.kind() == std::io::ErrorKind::InvalidData => Input::Unreadable(error.to_string()),
            Some(Err(error)) => Input::Failed(error.to_string()),
            None => Input::Eof,
        };
        let last = !matches!(input, Input::Line(_) | Input::Unreadable(_));
        if inputs.send(input).is_err() || last {
            return;
        }
    }
}

/// Saving and restoring the terminal's settings.
mod terminal {
    /// The settings of the terminal on stdin, as they were.
    pub(crate) struct Saved {
        #[cfg(unix)]
        termios: nix::sys::termios::Termios,
    }

    /// The current settings, if stdin is a terminal.
    pub(crate) fn save() -> Option<Saved> {
        #[cfg(unix)]
        {
            use std::io::IsTerminal;
            if !std::io::stdin().is_terminal() {
                return None;
            }
            nix::sys::termios::tcgetattr(std::io::stdin()).ok().map(|termios| Saved { termios })
        }
        #[cfg(not(unix))]
        None
    }

    impl Saved {
        /// Puts them back, and turns off bracketed paste, which the line editor turns on.
        pub(crate) fn restore(&self) {
            #[cfg(unix)]
            {
                use nix::sys::termios::{SetArg, tcsetattr};
                use std::io::Write;
                let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &self.termios);
                let mut stdout = std::io::stdout();
                let _ = stdout.write_all(b"\x1b[?2004l");
                let _ = stdout.flush();
            }
        }
    }
}
