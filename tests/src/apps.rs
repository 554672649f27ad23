//! Programs driven as OS processes, for end-to-end tests of the apps: spawn one with piped stdin, stdout and
//! stderr, wait for the lines it prints, type lines into it, interrupt it, kill it, wait for its exit.
//!
//! Every wait has a deadline, and a wait that fails panics with everything the program printed so far on both
//! streams, so a failing test says what the program did instead. A program still running when its [`App`] is
//! dropped (a failed test) is killed.
//!
//! ```no_run
//! use noex_tests::apps::App;
//!
//! let mut node = App::spawn("target/debug/counter-node", ["--name", "n1", "--port", "0", "--cookie", "c"]);
//! let id = node.expect_prefixed("Starting node: ");
//! node.send_line("/nodes");
//! node.expect(&format!("  - {id} (local)"));
//! node.send_line("/quit");
//! assert!(node.wait().success());
//! ```

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long any single wait may take by default before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A program running as a child process, its output read line by line in the background.
pub struct App {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Lines,
    status: Option<ExitStatus>,
}

/// One output stream: the lines received so far, and which of them an expectation has matched.
struct Lines {
    received: Receiver<String>,
    seen: Vec<(String, bool)>,
    closed: bool,
}

impl App {
    /// Starts `program` with `args`, every standard stream piped.
    #[track_caller]
    pub fn spawn<I, S>(program: impl AsRef<OsStr>, args: I) -> App
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command.args(args);
        Self::start(command)
    }

    /// Starts a prepared command (environment, working directory...), every standard stream piped.
    #[track_caller]
    pub fn start(mut command: Command) -> App {
        let program = std::path::Path::new(command.get_program());
        let name = program.file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned();
        let args: Vec<_> = command.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
        let label = std::iter::once(name).chain(args).collect::<Vec<_>>().join(" ");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start `{label}`: {error}"));
        let stdin = child.stdin.take();
        let stdout = Lines::forward(child.stdout.take().expect("piped stdout"));
        let stderr = Lines::forward(child.stderr.take().expect("piped stderr"));
        App { label, child, stdin, stdout, stderr, status: None }
    }

    /// The program's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for a stdout line that `matches` accepts and returns it. Lines are looked at in the
    /// order they came, and each can satisfy one expectation only; lines that do not match stay available to
    /// later expectations (so lines whose relative order is not specified can be awaited one after the other).
    #[track_caller]
    pub fn expect_line(&mut self, matches: impl Fn(&str) -> bool, timeout: Duration) -> String {
        match self.stdout.find(&matches, timeout) {
            Ok(line) => line,
            Err(why) => self.fail(&format!("no matching line on stdout ({why})")),
        }
    }

    /// Like [`expect_line`](Self::expect_line), on stderr.
    #[track_caller]
    pub fn expect_stderr_line(&mut self, matches: impl Fn(&str) -> bool, timeout: Duration) -> String {
        match self.stderr.find(&matches, timeout) {
            Ok(line) => line,
            Err(why) => self.fail(&format!("no matching line on stderr ({why})")),
        }
    }

    /// Waits up to [`WAIT`] for exactly this line on stdout.
    #[track_caller]
    pub fn expect(&mut self, line: &str) {
        if let Err(why) = self.stdout.find(&|seen: &str| seen == line, WAIT) {
            self.fail(&format!("no line {line:?} on stdout ({why})"));
        }
    }

    /// Waits up to [`WAIT`] for a stdout line that starts with `prefix`, and returns the rest of it.
    #[track_caller]
    pub fn expect_prefixed(&mut self, prefix: &str) -> String {
        match self.stdout.find(&|seen: &str| seen.starts_with(prefix), WAIT) {
            Ok(line) => line[prefix.len()..].to_owned(),
            Err(why) => self.fail(&format!("no line starting with {prefix:?} on stdout ({why})")),
        }
    }

    /// Types `line` (a newline is added) into the program's stdin.
    #[track_caller]
    pub fn send_line(&mut self, line: &str) {
        let Some(stdin) = self.stdin.as_mut() else { self.fail("stdin is already closed") };
        if let Err(error) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            self.fail(&format!("cannot write {line:?} to stdin: {error}"));
        }
    }

    /// Closes the program's stdin (end of input, as Ctrl+D at a terminal).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends SIGINT (as Ctrl+C at a terminal), through `kill -INT`.
    #[track_caller]
    pub fn interrupt(&mut self) {
        self.signal("INT");
    }

    /// Sends the signal called `name` (`HUP`, `TERM`, ...), through `kill`.
    #[track_caller]
    pub fn signal(&mut self, name: &str) {
        let sent = Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status();
        if !sent.as_ref().is_ok_and(ExitStatus::success) {
            self.fail(&format!("cannot send SIG{name}: {sent:?}"));
        }
    }

    /// Kills the program with SIGKILL and reaps it.
    #[track_caller]
    pub fn kill(&mut self) {
        if let Err(error) = self.child.kill() {
            self.fail(&format!("cannot kill: {error}"));
        }
        self.status = self.child.wait().ok();
    }

    /// Waits up to [`WAIT`] for the program to exit, and returns its status.
    #[track_caller]
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_timeout(WAIT)
    }

    /// Waits up to `timeout` for the program to exit, and returns its status; kills it and fails past that.
    #[track_caller]
    pub fn wait_timeout(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return status;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = self.child.kill();
                    self.fail(&format!("still running after {timeout:?} (killed)"));
                }
                Err(error) => self.fail(&format!("cannot wait: {error}")),
            }
        }
    }

    /// Everything the program printed so far, both streams.
    pub fn transcript(&mut self) -> String {
        self.stdout.drain();
        self.stderr.drain();
        format!("--- stdout of `{}`\n{}--- stderr\n{}---", self.label, self.stdout.text(), self.stderr.text())
    }

    #[track_caller]
    fn fail(&mut self, what: &str) -> ! {
        // Give the program's last words a moment to arrive.
        std::thread::sleep(Duration::from_millis(50));
        let transcript = self.transcript();
        panic!("`{}`: {what}\n{transcript}", self.label)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Lines {
    /// Reads `stream` line by line on a thread of its own (so the program never blocks on a full pipe).
    fn forward(stream: impl Read + Send + 'static) -> Lines {
        let (lines, received) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n') {
                let Ok(line) = line else { return };
                let line = String::from_utf8_lossy(&line);
                if lines.send(line.strip_suffix('\r').unwrap_or(&line).to_owned()).is_err() {
                    return;
                }
            }
        });
        Lines { received, seen: Vec::new(), closed: false }
    }

    /// The first line not matched yet that `matches` accepts, waiting up to `timeout` for it; else why not.
    fn find(&mut self, matches: &dyn Fn(&str) -> bool, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut next = 0;
        loop {
            while let Some((line, matched)) = self.seen.get_mut(next) {
                next += 1;
                if !*matched && matches(line) {
                    *matched = true;
                    return Ok(line.clone());
                }
            }
            if self.closed {
                return Err("the stream is closed".into());
            }
            match self.received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => self.seen.push((line, false)),
                Err(RecvTimeoutError::Timeout) => return Err(format!("timed out after {timeout:?}")),
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }

    /// Takes in what has arrived, without waiting.
    fn drain(&mut self) {
        self.seen.extend(self.received.try_iter().map(|line| (line, false)));
    }

    fn text(&self) -> String {
        self.seen.iter().map(|(line, _)| format!("{line}\n")).collect()
    }
}

/// A directory of its own for one test (cookie files, a home directory), removed when dropped.
pub struct ScratchDir {
    path: std::path::PathBuf,
}

impl ScratchDir {
    /// A new, empty directory named after `test` (and this process, so that concurrent runs do not meet).
    pub fn new(test: &str) -> ScratchDir {
        let path = std::env::temp_dir().join(format!("noex-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        ScratchDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes `contents` to the file `name` in this directory with permission bits `mode`; returns its path.
    #[cfg(unix)]
    pub fn file(&self, name: &str, contents: &str, mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path.join(name);
        std::fs::write(&path, contents).expect("write a scratch file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("set its mode");
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
