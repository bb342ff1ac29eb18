//! The journal's recovery scan on arbitrary bytes: as the last segment (a torn tail is
//! allowed) and as an earlier one. It never panics, and what it keeps is well formed: the
//! records lie inside the bytes, in order, numbered one after another, and a torn tail is
//! only ever reported for the last segment.

#![no_main]

use corridor_journal::{record, scan_segment, SegmentHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = record::decode(data);
    // Raw bytes, and the same bytes behind a valid header (so the record walk is reached).
    let mut with_header = SegmentHeader { first_seq: 1, created_unix_ms: 0 }.to_bytes().to_vec();
    with_header.extend_from_slice(data);
    for (bytes, last) in [(data, true), (data, false), (&with_header[..], true), (&with_header[..], false)] {
        let data = bytes;
        if let Ok(scan) = scan_segment(data, 1, last) {
            assert!(scan.end <= data.len());
            assert!(last || scan.torn.is_none());
            let mut expected = 1;
            let mut at = 0;
            for f in &scan.records {
                assert!(f.offset >= at && f.offset < scan.end);
                assert_eq!(f.record.seq, expected);
                expected += 1;
                at = f.offset;
            }
        }
    }
});
