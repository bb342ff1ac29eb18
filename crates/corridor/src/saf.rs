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
    /// Only these ids (repeatable): `ID`, or `SHARD:ID` as `list` shows them for a switch of
    /// several shards.
    #[arg(long = "id")]
    ids: Vec<EntryName>,
    /// Only this shard's entries (a switch of several shards journals each in its own
    /// directory, and numbers the entries there).
    #[arg(long)]
    shard: Option<usize>,
}

/// An entry's name: its id in its shard's journal, and the shard when given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryName {
    shard: Option<usize>,
    id: u64,
}

impl std::str::FromStr for EntryName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an entry id (ID or SHARD:ID)");
        match s.split_once(':') {
            Some((k, id)) => {
                Ok(Self { shard: Some(k.parse().map_err(|_| bad())?), id: id.parse().map_err(|_| bad())? })
            }
            None => Ok(Self { shard: None, id: s.parse().map_err(|_| bad())? }),
        }
    }
}

impl Filter {
    fn keeps(&self, shard: usize, id: u64, q: &ReversalQueued, now_ms: u64) -> bool {
        self.destination.as_ref().is_none_or(|d| *d == q.destination)
            && self.older_than.is_none_or(|s| now_ms.saturating_sub(q.queued_unix_ms) >= s * 1000)
            && (self.ids.is_empty()
                || self.ids.iter().any(|n| n.id == id && n.shard.is_none_or(|k| k == shard)))
            && self.shard.is_none_or(|k| k == shard)
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

fn describe(id: &str, state: &str, (q, attempts): &SafState, now_ms: u64) -> String {
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
    let now = unix_ms();
    let dirs = corridor_net::journal::shard_dirs(dir);
    let sharded = dirs.len() > 1;
    println!(
        "{:>12}  {:<9}  {:<4}  {:<11}  {:<16}  {:>8}  {:>8}  pan",
        "id", "state", "mti", "from", "destination", "attempts", "age s"
    );
    let (mut shown, mut waiting, mut exceptions) = (0, 0, 0);
    for (k, d) in &dirs {
        let (owed, _) = read_state(d)?;
        let queued = owed.reversals.iter().filter(|_| !only_exceptions).map(|(id, s)| (id, "queued", s));
        for (id, state, s) in queued.chain(owed.exceptions.iter().map(|(id, s)| (id, "exception", s))) {
            if filter.keeps(*k, *id, &s.0, now) {
                // Each shard's journal numbers its own entries: with several, SHARD:ID.
                let name = if sharded { format!("{k}:{id}") } else { id.to_string() };
                println!("{}", describe(&name, state, s, now));
                shown += 1;
            }
        }
        waiting += owed.reversals.len();
        exceptions += owed.exceptions.len();
    }
    println!("{shown} shown; {waiting} waiting for their destination, {exceptions} in the exception queue");
    Ok(())
}

fn act(dir: &std::path::Path, filter: &Filter, op: Op) -> Result<()> {
    if filter.is_empty() {
        bail!("name the entries: --id, --destination or --older-than");
    }
    let now = unix_ms();
    // Per shard's journal (the running switch's shard k answers requests in its own).
    let sharded = corridor_net::journal::shard_dirs(dir).len() > 1;
    let mut chosen: Vec<(usize, std::path::PathBuf, u64)> = Vec::new();
    for (k, d) in corridor_net::journal::shard_dirs(dir) {
        let (owed, _) = read_state(&d)?;
        for (id, s) in &owed.exceptions {
            if filter.keeps(k, *id, &s.0, now) {
                chosen.push((k, d.clone(), *id));
            }
        }
    }
    if chosen.is_empty() {
        bail!("no entry of the exception queue matches");
    }
    for n in filter.ids.iter().filter(|n| n.shard.is_none()) {
        let shards: Vec<String> = chosen.iter().filter(|c| c.2 == n.id).map(|c| c.0.to_string()).collect();
        if shards.len() > 1 {
            bail!(
                "entry {} is in the exception queues of shards {}: name one as SHARD:ID",
                n.id,
                shards.join(", ")
            );
        }
    }
    let verb = match op {
        Op::Retry => "retried",
        Op::Drop => "dropped",
    };
    let mut missing = 0;
    for (k, d, id) in chosen {
        let name = if sharded { format!("{k}:{id}") } else { id.to_string() };
        match request(&d, op, id, ANSWER_WAIT)? {
            Outcome::Done => println!("{name}: {verb}"),
            Outcome::NotFound => {
                missing += 1;
                println!("{name}: no longer in the exception queue");
            }
        }
    }
    if missing > 0 {
        bail!("{missing} entries were not in the exception queue any more");
    }
    Ok(())
}
