//! Reading a journal's records from its segment files, for the views that are not the
//! switch's own (transactions, clearing): one segment in memory at a time, newest segment
//! read as possibly torn at its tail, a segment removed by retention meanwhile skipped.

use std::path::Path;

use corridor_journal::{entry::Entry, segment::scan_segment};
use corridor_net::journal::segments_since;

/// Calls `each` with every record (its sequence number and entry) of the segments holding
/// records from `from_unix_ms` on, at most `max` segments; records of a kind this version
/// does not read are passed over. Whether later segments were left unread.
///
/// # Errors
///
/// The directory cannot be read, a segment is corrupt inside, or `each` fails.
pub(crate) fn for_each_since(
    dir: &Path,
    from_unix_ms: u64,
    max: usize,
    mut each: impl FnMut(u64, Entry) -> anyhow::Result<()>,
) -> anyhow::Result<(usize, bool)> {
    let (segments, more) = segments_since(dir, from_unix_ms, max)?;
    let last = segments.last().map(|(seq, _)| *seq);
    for (seq, path) in &segments {
        // A segment removed by retention meanwhile is simply not there any more.
        let Ok(bytes) = std::fs::read(path) else { continue };
        let seg = scan_segment(&bytes, *seq, Some(*seq) == last)
            .map_err(|e| anyhow::anyhow!("segment {seq:020}: {e}"))?;
        for f in &seg.records {
            if let Ok(entry) = Entry::decode(f.record.kind, f.record.payload) {
                each(f.record.seq, entry)?;
            }
        }
    }
    Ok((segments.len(), more))
}
