//! `corridor saf`: the store-and-forward queue and the exception queue of a journal
//! directory — a running switch's or a stopped one's.
//!
//! `list` reads the journal (its newest checkpoint and the records after it) and changes
//! nothing. `retry` and `drop` act on the exception queue: through the running switch when
//! one holds the directory's lock, else by appending the record to the journal itself.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Result};
use clap::Subcommand;
use corridor_journal::{entry::ReversalQueued, recovery::SafState, request::view};
use corridor_net::{
    control::{request, Op, Outcome},
    journal::{read_state, unix_ms},
};
use corridor_wire::Message;

/// How long `retry` and `drop` wait for a running switch's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Which entries.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct Filter {
    /// Only those for this destination participant.
    #[arg(long)]
    destination: Option<String>,
    /// Only those stored at least this many seconds ago.
    #[arg(long)]
    older_than: Option<u64>,
    /// Only these ids (repeatable).
    #[arg(long = "id")]
    ids: Vec<u64>,
}

impl Filter {
    fn keeps(&self, id: u64, q: &ReversalQueued, now_ms: u64) -> bool {
        self.destination.as_ref().is_none_or(|d| *d == q.destination)
            && self.older_than.is_none_or(|s| now_ms.saturating_sub(q.queued_unix_ms) >= s * 1000)
            && (self.ids.is_empty() || self.ids.contains(&id))
    }

    fn is_empty(&self) -> bool {
        self.destination.is_none() && self.older_than.is_none() && self.ids.is_empty()
    }
}

/// The store-and-forward commands.
#[derive(Subcommand)]
pub(crate) enum SafCommand {
    /// List the entries waiting for their destination and the exception queue.
    List {
        /// The journal directory.
        dir: PathBuf,
        #[command(flatten)]
        filter: Filter,
        /// Only the exception queue.
        #[arg(long)]
        exceptions: bool,
    },
    /// Move entries of the exception queue back to store-and-forward (a fresh repeat
    /// budget; the next transmission is a repeat).
    Retry {
        /// The journal directory.
        dir: PathBuf,
        #[command(flatten)]
        filter: Filter,
    },
    /// Drop entries of the exception queue for good (journaled, and logged by a running
    /// switch). Their destination will never see them: settle them by other means.
    Drop {
        /// The journal directory.
        dir: PathBuf,
        #[command(flatten)]
        filter: Filter,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a store-and-forward command.
///
/// # Errors
///
/// The journal cannot be read, a selection that names nothing, a drop not confirmed, or a
/// running switch that does not answer.
pub(crate) fn run(c: SafCommand) -> Result<()> {
    match c {
        SafCommand::List { dir, filter, exceptions } => list(&dir, &filter, exceptions),
        SafCommand::Retry { dir, filter } => act(&dir, &filter, Op::Retry),
        SafCommand::Drop { dir, filter, yes } => {
            if !yes {
                bail!("a dropped entry never reaches its destination: add --yes to drop");
            }
            act(&dir, &filter, Op::Drop)
        }
    }
}

fn describe(id: u64, state: &str, (q, attempts): &SafState, now_ms: u64) -> String {
    let sealed = view(&q.reversal).ok();
    let mti = sealed
        .as_ref()
        .and_then(|v| Message::parse(v.dialect, v.body.clone()).ok())
        .map_or_else(|| "????".to_owned(), |m| m.mti().to_string());
    let pan = sealed.as_ref().map_or_else(
        || "-".to_owned(),
        |v| format!("{}******{}", String::from_utf8_lossy(&v.first6), String::from_utf8_lossy(&v.last4)),
    );
    let from = if q.advice.is_some() { "participant" } else { "switch" };
    let age = now_ms.saturating_sub(q.queued_unix_ms) / 1000;
    format!("{id:>12}  {state:<9}  {mti}  {from:<11}  {:<16}  {attempts:>8}  {age:>8}  {pan}", q.destination)
}

fn list(dir: &std::path::Path, filter: &Filter, only_exceptions: bool) -> Result<()> {
    let (owed, _) = read_state(dir)?;
    let now = unix_ms();
    println!(
        "{:>12}  {:<9}  {:<4}  {:<11}  {:<16}  {:>8}  {:>8}  pan",
        "id", "state", "mti", "from", "destination", "attempts", "age s"
    );
    let mut shown = 0;
    let queued = owed.reversals.iter().filter(|_| !only_exceptions).map(|(id, s)| (id, "queued", s));
    for (id, state, s) in queued.chain(owed.exceptions.iter().map(|(id, s)| (id, "exception", s))) {
        if filter.keeps(*id, &s.0, now) {
            println!("{}", describe(*id, state, s, now));
            shown += 1;
        }
    }
    println!(
        "{shown} shown; {} waiting for their destination, {} in the exception queue",
        owed.reversals.len(),
        owed.exceptions.len()
    );
    Ok(())
}

fn act(dir: &std::path::Path, filter: &Filter, op: Op) -> Result<()> {
    if filter.is_empty() {
        bail!("name the entries: --id, --destination or --older-than");
    }
    let (owed, _) = read_state(dir)?;
    let now = unix_ms();
    let ids: Vec<u64> =
        owed.exceptions.iter().filter(|(id, s)| filter.keeps(**id, &s.0, now)).map(|(id, _)| *id).collect();
    if ids.is_empty() {
        bail!("no entry of the exception queue matches");
    }
    let verb = match op {
        Op::Retry => "retried",
        Op::Drop => "dropped",
    };
    let mut missing = 0;
    for id in ids {
        match request(dir, op, id, ANSWER_WAIT)? {
            Outcome::Done => println!("{id}: {verb}"),
            Outcome::NotFound => {
                missing += 1;
                println!("{id}: no longer in the exception queue");
            }
        }
    }
    if missing > 0 {
        bail!("{missing} entries were not in the exception queue any more");
    }
    Ok(())
}
