//! The scan of a whole log: its segments in order, each checked alone and against the one
//! before (a segment begins where the previous one ended), only the last allowed a torn
//! tail.

use crate::segment::{scan_segment, Corrupt, CorruptReason, SegmentScan};

/// What a log holds that recovery may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogScan<'a> {
    /// Each segment's first sequence number and scan, in order.
    pub segments: Vec<(u64, SegmentScan<'a>)>,
    /// The sequence number the next record gets.
    pub next_seq: u64,
}

impl LogScan<'_> {
    /// Records kept, over every segment.
    #[must_use]
    pub fn records(&self) -> usize {
        self.segments.iter().map(|(_, s)| s.records.len()).sum()
    }

    /// Where the last segment must be cut (its first sequence number and the offset), when
    /// its tail was torn.
    #[must_use]
    pub fn cut(&self) -> Option<(u64, usize)> {
        let (seq, s) = self.segments.last()?;
        s.torn.map(|_| (*seq, s.end))
    }
}

/// Scans `segments` — each its first sequence number (from its file name) and its bytes —
/// in order of that number. An empty log's next sequence number is 1.
///
/// # Errors
///
/// The first [`Corrupt`] place: damage inside a segment, a torn tail that is not in the
/// last segment, or a segment that does not begin where the previous one ended.
pub fn scan_log<'a>(segments: &[(u64, &'a [u8])]) -> Result<LogScan<'a>, Corrupt> {
    let mut out = LogScan { segments: Vec::with_capacity(segments.len()), next_seq: 1 };
    for (i, &(seq, bytes)) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if i > 0 && seq != out.next_seq {
            return Err(Corrupt {
                segment: seq,
                offset: 0,
                reason: CorruptReason::HeaderSequence { expected: out.next_seq, found: seq },
            });
        }
        let scan = scan_segment(bytes, seq, last)?;
        out.next_seq = scan.next_seq(seq);
        out.segments.push((seq, scan));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        record::{encode, Kind},
        segment::{SegmentHeader, Torn},
    };

    fn segment(first: u64, records: u64) -> Vec<u8> {
        let mut b = SegmentHeader { first_seq: first, created_unix_ms: 1 }.to_bytes().to_vec();
        for s in first..first + records {
            encode(s, Kind::AnswerSent, &s.to_le_bytes(), &mut b);
        }
        b
    }

    #[test]
    fn segments_chain_and_only_the_last_may_be_torn() {
        let (a, b, c) = (segment(1, 10), segment(11, 5), segment(16, 3));
        let log = scan_log(&[(1, &a), (11, &b), (16, &c)]).unwrap();
        assert_eq!((log.records(), log.next_seq, log.cut()), (18, 19, None));
        // The last one torn: cut, and the next record reuses the torn one's number.
        let torn = &c[..c.len() - 1];
        let log = scan_log(&[(1, &a), (11, &b), (16, torn)]).unwrap();
        assert_eq!((log.records(), log.next_seq), (17, 18));
        assert_eq!(log.cut().map(|(s, _)| s), Some(16));
        assert_eq!(log.segments[2].1.torn, Some(Torn::Incomplete));
        // A middle one torn is corruption.
        let e = scan_log(&[(1, &a), (11, &b[..b.len() - 1]), (16, &c)]).unwrap_err();
        assert_eq!(e.segment, 11);
        // A gap between segments too.
        let e = scan_log(&[(1, &a), (12, &segment(12, 2))]).unwrap_err();
        assert_eq!(e.reason, CorruptReason::HeaderSequence { expected: 11, found: 12 });
        assert_eq!(scan_log(&[]).unwrap().next_seq, 1);
    }
}
