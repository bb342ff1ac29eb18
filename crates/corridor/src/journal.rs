//! `corridor journal`: look at a journal directory, check it, and — deliberately — cut it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use corridor_net::journal::{truncate, Segments};

/// The journal commands.
#[derive(Subcommand)]
pub(crate) enum JournalCommand {
    /// Check every segment and record; say where a torn tail would be cut. Exits 1 on
    /// corruption inside the log, naming the segment and offset.
    Verify {
        /// The journal directory.
        dir: PathBuf,
    },
    /// List every record: sequence number, kind, payload size, segment and offset.
    Inspect {
        /// The journal directory.
        dir: PathBuf,
    },
    /// List the audit trail: every operator's change to the running switch (admin API
    /// calls, SIGHUP reloads) with who, what, when and how it ended.
    Audit {
        /// The journal directory.
        dir: PathBuf,
    },
    /// List the last records.
    Tail {
        /// The journal directory.
        dir: PathBuf,
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
    /// Cut the log at a segment and offset (what `verify` names), removing everything after.
    /// Records after the cut are lost: this is an operator's decision, never automatic for
    /// damage inside the log.
    Truncate {
        /// The journal directory.
        dir: PathBuf,
        /// The segment's first sequence number (its file name).
        #[arg(long)]
        segment: u64,
        /// The byte offset in that segment.
        #[arg(long)]
        offset: usize,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a journal command.
///
/// # Errors
///
/// A directory that cannot be read, corruption (for `verify`, `inspect`, `tail`), or a cut
/// not confirmed.
pub(crate) fn run(c: JournalCommand) -> Result<()> {
    match c {
        JournalCommand::Verify { dir } => {
            let segs = Segments::read(&dir)?;
            let scan = segs.scan()?;
            println!(
                "journal {}: {} segments, {} records, next sequence {}",
                dir.display(),
                scan.segments.len(),
                scan.records(),
                scan.next_seq
            );
            for ((seq, s), (_, bytes)) in scan.segments.iter().zip(&segs.files) {
                let range = match (s.records.first(), s.records.last()) {
                    (Some(a), Some(b)) => format!("records {}-{}", a.record.seq, b.record.seq),
                    _ => "no records".into(),
                };
                println!("  {seq:020}.seg  {:>10} bytes  {range}", bytes.len());
            }
            let checkpoints = corridor_net::journal::checkpoints(&dir)?;
            if let Some(seq) = checkpoints.last() {
                println!("  newest checkpoint covers records up to {seq} ({} kept)", checkpoints.len());
            }
            let (owed, _) = corridor_net::journal::read_state(&dir)?;
            println!(
                "owed: {} requests forwarded without an answer (to reverse), {} accepted and never forwarded, \
                 {} reversals and advices unacknowledged, {} in the exception queue; {} answered outcomes",
                owed.open().count(),
                owed.unforwarded().count(),
                owed.reversals.len(),
                owed.exceptions.len(),
                owed.outcomes.len()
            );
            let zeros =
                scan.segments.last().is_some_and(|(_, s)| s.torn == Some(corridor_journal::Torn::Zeros));
            match scan.cut() {
                None => println!("clean"),
                Some((seq, at)) if zeros => {
                    let len = segs.files.last().map_or(0, |(_, b)| b.len());
                    println!(
                        "clean (segment {seq:020}.seg: {} bytes of prepared space after its last record)",
                        len - at
                    );
                }
                Some((seq, at)) => {
                    let len = segs.files.last().map_or(0, |(_, b)| b.len());
                    println!(
                        "torn tail: segment {seq:020}.seg at offset {at} ({} bytes after it, {:?}); the next start cuts it",
                        len - at,
                        scan.segments.last().and_then(|(_, s)| s.torn)
                    );
                }
            }
            Ok(())
        }
        JournalCommand::Inspect { dir } => list(&dir, usize::MAX),
        JournalCommand::Audit { dir } => audit(&dir),
        JournalCommand::Tail { dir, lines } => list(&dir, lines),
        JournalCommand::Truncate { dir, segment, offset, yes } => {
            if !yes {
                bail!("truncating loses every record after the cut: add --yes to do it");
            }
            truncate(&dir, segment, offset)?;
            println!("cut {} at segment {segment:020}.seg, offset {offset}", dir.display());
            Ok(())
        }
    }
}

fn audit(dir: &std::path::Path) -> Result<()> {
    let segs = Segments::read(dir)?;
    let scan = segs.scan()?;
    println!("{:>12}  {:<24}  {:<40}  {:<28}  outcome", "seq", "when (UTC)", "who", "what");
    for (_, s) in &scan.segments {
        for f in &s.records {
            if f.record.kind != corridor_journal::record::Kind::Audit {
                continue;
            }
            let entry = corridor_journal::Entry::decode(f.record.kind, f.record.payload)
                .map_err(|e| anyhow::anyhow!("record {}: {e}", f.record.seq))?;
            if let corridor_journal::Entry::Audit { at_unix_ms, who, action, outcome } = entry {
                // Records written before the engine kept them to one line print as one too.
                let [who, action, outcome] =
                    [who, action, outcome].map(|t| corridor_journal::entry::one_line(&t).into_owned());
                println!("{:>12}  {:<24}  {who:<40}  {action:<28}  {outcome}", f.record.seq, utc(at_unix_ms));
            }
        }
    }
    Ok(())
}

use corridor_wire::clock::utc_text as utc;

fn list(dir: &std::path::Path, last: usize) -> Result<()> {
    let segs = Segments::read(dir)?;
    let scan = segs.scan()?;
    let all: Vec<_> =
        scan.segments.iter().flat_map(|(seq, s)| s.records.iter().map(move |f| (*seq, f))).collect();
    println!("{:>12}  {:<18}  {:>7}  {:>20}  {:>10}", "seq", "kind", "payload", "segment", "offset");
    for (seq, f) in all.iter().skip(all.len().saturating_sub(last)) {
        println!(
            "{:>12}  {:<18}  {:>7}  {seq:020}  {:>10}",
            f.record.seq,
            format!("{:?}", f.record.kind),
            f.record.payload.len(),
            f.offset
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn audit_times_print_as_utc() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::utc(1_796_146_979_465), "2026-12-01T17:42:59.465Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
