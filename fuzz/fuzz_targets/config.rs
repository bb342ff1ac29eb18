//! The configuration parser on arbitrary text: an error or a configuration, never a panic;
//! and whatever it accepts, it accepts again from its own summary's view of it unchanged
//! (the check is whole: a configuration it accepts is one the switch can be built from).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // Relative file names resolve under a directory that does not exist: no file the
    // input names is read from the working directory.
    let Ok(loaded) = corridor_config::parse_in(text, std::path::Path::new("/nonexistent-fuzz-base")) else {
        return;
    };
    let _ = corridor_config::summary(&loaded);
    let again = corridor_config::parse_in(text, std::path::Path::new("/nonexistent-fuzz-base"))
        .expect("accepted once, accepted again");
    assert_eq!(corridor_config::summary(&again), corridor_config::summary(&loaded));
});
