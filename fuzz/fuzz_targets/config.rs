//! The configuration parser on arbitrary text: an error or a configuration, never a panic;
//! whatever it accepts, it accepts again from its own summary's view of it unchanged (the
//! check is whole: a configuration it accepts is one the switch can be built from); and a
//! reload between it and a fixed configuration, either way, re-indexes without a panic into
//! a table whose every index is in range, while a reload of the same text changes nothing.

#![no_main]

use corridor_config::reload::{rebase, Current};
use libfuzzer_sys::fuzz_target;

/// What the switch is taken to run on before (or after) the fuzzed file.
const BASE: &str = r#"
[[participant]]
id = "wallet-sg"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
  [[participant.link]]
  name = "wallet-sg-1"
  mode = "listen"
  address = "127.0.0.1:9101"
  framing = "bin2"
  dialect = "iso87-ascii"

[[participant]]
id = "issuer-vn"
roles = ["issuer"]
  [[participant.link]]
  name = "issuer-vn-1"
  mode = "dial"
  address = "127.0.0.1:9201"
  framing = "native"
  dialect = "native"

[[route]]
pan_prefix = "476173"
destination = "issuer-vn"
"#;

fn parse(text: &str) -> Option<corridor_config::Loaded> {
    // Relative file names resolve under a directory that does not exist: no file the
    // input names is read from the working directory.
    corridor_config::parse_in(text, std::path::Path::new("/nonexistent-fuzz-base")).ok()
}

fn in_range(r: &corridor_config::reload::Reload) {
    let c = &r.reconfigure.engine;
    assert_eq!(r.reconfigure.plan.len(), c.links.len());
    assert!(c.links.iter().all(|l| l.participant < c.participants.len()));
    assert!(c.routes.routes().iter().all(|route| route.destination < c.participants.len()));
    assert!(r.reconfigure.listens.iter().all(|l| l.spec < c.links.len()));
    assert!(r.reconfigure.dials.iter().all(|d| d.spec < c.links.len()));
}

fuzz_target!(|text: &str| {
    let Some(loaded) = parse(text) else { return };
    let _ = corridor_config::summary(&loaded);
    let again = parse(text).expect("accepted once, accepted again");
    assert_eq!(corridor_config::summary(&again), corridor_config::summary(&loaded));

    let same = rebase(&Current::of(&loaded), again).expect("the same file reloads");
    assert!(same.changes.is_empty(), "{:?}", same.changes);
    let base = parse(BASE).expect("the base is valid");
    let base_current = Current::of(&base);
    if let Ok(r) = rebase(&base_current, loaded) {
        in_range(&r);
        let back = rebase(&r.next, parse(BASE).expect("valid")).expect("the base reloads back");
        in_range(&back);
    }
});
