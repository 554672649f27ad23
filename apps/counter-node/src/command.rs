//! What the user typed: one REPL line parsed into a [`Command`], or the one-line reason it is not one. Pure.

use std::fmt;

/// The help block of `/help`.
pub(crate) const HELP: &str = "
Distributed Counter Commands:
  /help                     Show this help message
  /create <name>            Create a counter locally
  /create <name> on <node>  Create a counter on a specific node
  /inc <name> [amount]      Increment counter (default: 1)
  /dec <name> [amount]      Decrement counter (default: 1)
  /get <name>               Get counter value
  /watch <name>             Start monitoring a counter
  /unwatch <name>           Stop monitoring a counter
  /counters                 List all counters across the cluster
  /nodes                    List connected nodes
  /quit                     Disconnect and exit

Demo: Create a counter on node2, watch it from node1, then kill node2.
";

/// The commands, as completion offers them.
pub(crate) const COMMANDS: &[&str] =
    &["/help", "/create", "/inc", "/dec", "/get", "/watch", "/unwatch", "/counters", "/nodes", "/quit"];

/// The commands that take a counter name as their first argument.
pub(crate) const TAKES_COUNTER: &[&str] = &["/inc", "/dec", "/get", "/watch", "/unwatch"];

/// A command of the REPL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `/help`
    Help,
    /// `/create <name> [on <node>]`: `on` is a node's short name or full id.
    Create { name: String, on: Option<String> },
    /// `/inc <name> [amount]` and `/dec <name> [amount]`.
    Update { name: String, direction: Direction, amount: i64 },
    /// `/get <name>`
    Get { name: String },
    /// `/watch <name>`
    Watch { name: String },
    /// `/unwatch <name>`
    Unwatch { name: String },
    /// `/counters`
    Counters,
    /// `/nodes`
    Nodes,
    /// `/quit`
    Quit,
}

/// Which way `/inc` and `/dec` move a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `/inc`
    Increment,
    /// `/dec`
    Decrement,
}

/// Why a line is not a command. Its `Display` is the line to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Missing or extra arguments: the command's usage line.
    Usage(&'static str),
    /// An amount that is not an integer.
    InvalidAmount(String),
    /// Not a known command (or no leading `/`): the first word.
    Unknown(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Usage(usage) => write!(f, "Usage: {usage}"),
            ParseError::InvalidAmount(amount) => write!(f, "Invalid amount: {amount} (expected an integer)"),
            ParseError::Unknown(command) => {
                write!(f, "Unknown command: {command}. Type /help for available commands.")
            }
        }
    }
}

/// Parses one line. A blank line is no command (`Ok(None)`). Words are separated by whitespace; counter and node
/// names are single words.
pub(crate) fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let mut words = line.split_whitespace();
    let Some(command) = words.next() else { return Ok(None) };
    let args: Vec<&str> = words.collect();
    let name = |usage: &'static str| match args[..] {
        [name] => Ok(name.to_owned()),
        _ => Err(ParseError::Usage(usage)),
    };
    let command = match command {
        "/help" => Command::Help,
        "/create" => match args[..] {
            [name] if name != "on" => Command::Create { name: name.to_owned(), on: None },
            [name, "on", node] if name != "on" => Command::Create { name: name.to_owned(), on: Some(node.to_owned()) },
            _ => return Err(ParseError::Usage("/create <name> [on <node>]")),
        },
        "/inc" => update(&args, Direction::Increment, "/inc <name> [amount]")?,
        "/dec" => update(&args, Direction::Decrement, "/dec <name> [amount]")?,
        "/get" => Command::Get { name: name("/get <name>")? },
        "/watch" => Command::Watch { name: name("/watch <name>")? },
        "/unwatch" => Command::Unwatch { name: name("/unwatch <name>")? },
        "/counters" => Command::Counters,
        "/nodes" => Command::Nodes,
        "/quit" => Command::Quit,
        other => return Err(ParseError::Unknown(other.to_owned())),
    };
    Ok(Some(command))
}

fn update(args: &[&str], direction: Direction, usage: &'static str) -> Result<Command, ParseError> {
    let (name, amount) = match args {
        [name] => (name, 1),
        [name, amount] => (name, amount.parse().map_err(|_| ParseError::InvalidAmount((*amount).to_owned()))?),
        _ => return Err(ParseError::Usage(usage)),
    };
    Ok(Command::Update { name: (*name).to_owned(), direction, amount })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}")).expect("a command")
    }

    fn err(line: &str) -> String {
        parse(line).expect_err(line).to_string()
    }

    fn named(name: &str) -> String {
        name.to_owned()
    }

    #[test]
    fn blank_lines_are_no_command() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("  \t "), Ok(None));
    }

    #[test]
    fn commands_without_arguments() {
        assert_eq!(ok("/help"), Command::Help);
        assert_eq!(ok("/counters"), Command::Counters);
        assert_eq!(ok("/nodes"), Command::Nodes);
        assert_eq!(ok("  /quit  "), Command::Quit);
    }

    #[test]
    fn create_locally_or_on_a_node() {
        assert_eq!(ok("/create a"), Command::Create { name: named("a"), on: None });
        assert_eq!(ok("/create a on node2"), Command::Create { name: named("a"), on: Some(named("node2")) });
        assert_eq!(
            ok("/create my-counter   on node2@127.0.0.1:4370"),
            Command::Create { name: named("my-counter"), on: Some(named("node2@127.0.0.1:4370")) }
        );
    }

    #[test]
    fn create_usage() {
        for line in ["/create", "/create on", "/create a on", "/create a b", "/create a on b c", "/create on on x"] {
            assert_eq!(err(line), "Usage: /create <name> [on <node>]", "{line}");
        }
    }

    #[test]
    fn inc_and_dec_default_to_one() {
        assert_eq!(ok("/inc a"), Command::Update { name: named("a"), direction: Direction::Increment, amount: 1 });
        assert_eq!(ok("/dec a"), Command::Update { name: named("a"), direction: Direction::Decrement, amount: 1 });
        assert_eq!(ok("/inc a 10"), Command::Update { name: named("a"), direction: Direction::Increment, amount: 10 });
        assert_eq!(ok("/dec a -4"), Command::Update { name: named("a"), direction: Direction::Decrement, amount: -4 });
    }

    #[test]
    fn inc_and_dec_usage_and_bad_amounts() {
        assert_eq!(err("/inc"), "Usage: /inc <name> [amount]");
        assert_eq!(err("/inc a 1 2"), "Usage: /inc <name> [amount]");
        assert_eq!(err("/dec"), "Usage: /dec <name> [amount]");
        assert_eq!(err("/inc a abc"), "Invalid amount: abc (expected an integer)");
        assert_eq!(err("/dec a 1.5"), "Invalid amount: 1.5 (expected an integer)");
        assert_eq!(err("/inc a 99999999999999999999"), "Invalid amount: 99999999999999999999 (expected an integer)");
    }

    #[test]
    fn commands_on_one_counter() {
        assert_eq!(ok("/get a"), Command::Get { name: named("a") });
        assert_eq!(ok("/watch a"), Command::Watch { name: named("a") });
        assert_eq!(ok("/unwatch a"), Command::Unwatch { name: named("a") });
        assert_eq!(err("/get"), "Usage: /get <name>");
        assert_eq!(err("/watch"), "Usage: /watch <name>");
        assert_eq!(err("/unwatch a b"), "Usage: /unwatch <name>");
    }

    #[test]
    fn unknown_commands_name_their_first_word() {
        assert_eq!(err("/frobnicate x"), "Unknown command: /frobnicate. Type /help for available commands.");
        assert_eq!(err("hello world"), "Unknown command: hello. Type /help for available commands.");
        assert_eq!(err("/HELP"), "Unknown command: /HELP. Type /help for available commands.");
    }

    #[test]
    fn every_listed_command_parses() {
        for command in COMMANDS {
            let line = if TAKES_COUNTER.contains(command) || *command == "/create" {
                format!("{command} a")
            } else {
                (*command).to_owned()
            };
            assert!(parse(&line).is_ok(), "{line}");
        }
    }
}
