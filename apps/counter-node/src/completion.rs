//! Tab completion for the REPL: commands, then counter names after the commands that take one, then `on` and
//! node names (short names and full ids) after `/create <name>`.

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use crate::command::{COMMANDS, TAKES_COUNTER};

/// A source of names, asked at every completion (names change as the cluster does).
pub(crate) type Names = Box<dyn Fn() -> Vec<String> + Send + Sync>;

/// What completion offers besides the commands.
pub(crate) struct Candidates {
    /// The counters of the cluster, by name.
    pub(crate) counters: Names,
    /// The nodes of the cluster (this one included): short names and full ids.
    pub(crate) nodes: Names,
}

/// The completions of the word that ends at `pos` in `line`: where that word starts, and what may replace it (with
/// a space after it when it is the only one).
pub(crate) fn complete(line: &str, pos: usize, candidates: &Candidates) -> (usize, Vec<String>) {
    let Some(before) = line.get(..pos) else { return (pos, Vec::new()) };
    // After the last whitespace character, whatever its width in bytes (a no-break space is two).
    let start = before.char_indices().rev().find(|(_, c)| c.is_whitespace()).map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[start..];
    let previous: Vec<&str> = before[..start].split_whitespace().collect();
    let offered: Vec<String> = match previous[..] {
        [] => COMMANDS.iter().map(|c| (*c).to_owned()).collect(),
        [command] if TAKES_COUNTER.contains(&command) => (candidates.counters)(),
        ["/create", _] => vec!["on".to_owned()],
        ["/create", _, "on"] => (candidates.nodes)(),
        _ => Vec::new(),
    };
    let mut matching: Vec<String> = offered.into_iter().filter(|c| c.starts_with(word)).collect();
    matching.sort();
    matching.dedup();
    // A word completed for sure is followed by a space, as in a shell, unless one is there already.
    if let [only] = &mut matching[..] {
        if !line[pos..].starts_with(char::is_whitespace) {
            only.push(' ');
        }
    }
    (start, matching)
}

/// The rustyline helper: completion only (no hints, highlighting or validation).
pub(crate) struct ReplHelper {
    candidates: Candidates,
}

impl ReplHelper {
    /// A helper completing from `candidates`.
    pub(crate) fn new(candidates: Candidates) -> Self {
        ReplHelper { candidates }
    }
}

impl Completer for ReplHelper {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(complete(line, pos, &self.candidates))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Candidates {
        Candidates {
            counters: Box::new(|| vec!["my-counter".into(), "hits".into(), "misses".into()]),
            nodes: Box::new(|| {
                vec!["node1".into(), "node1@127.0.0.1:4369".into(), "node2".into(), "node2@127.0.0.1:4370".into()]
            }),
        }
    }

    fn at_end(line: &str) -> (usize, Vec<String>) {
        complete(line, line.len(), &candidates())
    }

    #[test]
    fn commands_first() {
        assert_eq!(at_end("/c"), (0, vec!["/counters".into(), "/create".into()]));
        assert_eq!(at_end("/q"), (0, vec!["/quit ".into()]));
        assert_eq!(at_end("/wa"), (0, vec!["/watch ".into()]), "then the counter's name can be typed");
        assert_eq!(at_end("").1.len(), COMMANDS.len());
        assert_eq!(at_end("/x"), (0, vec![]));
    }

    #[test]
    fn counter_names_after_the_commands_that_take_one() {
        assert_eq!(at_end("/inc m"), (5, vec!["misses".into(), "my-counter".into()]));
        assert_eq!(at_end("/watch h"), (7, vec!["hits ".into()]));
        assert_eq!(at_end("/get ").1.len(), 3);
        assert_eq!(at_end("/nodes "), (7, vec![]));
        assert_eq!(at_end("/inc hits 1"), (10, vec![]), "no completion for amounts");
    }

    #[test]
    fn on_and_node_names_after_create() {
        assert_eq!(at_end("/create c "), (10, vec!["on ".into()]));
        assert_eq!(at_end("/create c on node2"), (13, vec!["node2".into(), "node2@127.0.0.1:4370".into()]));
        assert_eq!(at_end("/create c on ").1.len(), 4);
        assert_eq!(at_end("/create c in "), (13, vec![]));
    }

    #[test]
    fn completes_the_word_under_the_cursor() {
        assert_eq!(complete("/inc h 5", 6, &candidates()), (5, vec!["hits".into()]), "a space is there already");
        assert_eq!(at_end("/inc é"), (5, vec![]));
        assert_eq!(complete("/inc é", 6, &candidates()), (6, vec![]), "not a char boundary");
    }

    #[test]
    fn wide_whitespace_is_a_separator_not_a_panic() {
        // A no-break space (two bytes) and an ideographic space (three).
        assert_eq!(at_end("/inc\u{a0}h"), (6, vec!["hits ".into()]));
        assert_eq!(at_end("/inc\u{3000}"), (7, vec!["hits".into(), "misses".into(), "my-counter".into()]));
    }
}
