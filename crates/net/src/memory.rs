//! Giving memory back after a flood. A burst of connections takes read buffers, tasks and
//! partial frames; when most of them have closed, the allocator is asked to return what
//! they freed to the system, so the switch's resident size falls back instead of staying
//! at the flood's peak. Which allocator that is, is the binary's choice: the binary sets the
//! hook ([`set_release`]); without one, nothing is asked.

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Sets the function that asks the allocator to return freed memory to the system, for the
/// calling thread's heap (each shard calls it on its own thread). Only the first call sets
/// it; `false` when one was already set.
pub fn set_release(release: fn()) -> bool {
    RELEASE.set(release).is_ok()
}

/// Asks the allocator, if a hook is set.
pub(crate) fn release() {
    if let Some(f) = RELEASE.get() {
        f();
    }
}
