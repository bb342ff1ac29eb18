//! The journal's recovery scan on arbitrary bytes: as the last segment (a torn tail is
//! allowed) and as an earlier one. It never panics, and what it keeps is well formed: the
//! records lie inside the bytes, in order, numbered one after another, and a torn tail is
//! only ever reported for the last segment.

#![no_main]

use corridor_journal::{record, scan_segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = record::decode(data);
    for last in [true, false] {
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
