//! Duplicate detection: the key that makes two transmissions the same request.

use corridor_wire::Stan;

use crate::engine::Msg;

/// Originator, MTI class, STAN, transmission time, terminal: two requests with the same key
/// are one request sent twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DupKey {
    participant: usize,
    class: u8,
    stan: u32,
    time: u64,
    terminal: [u8; 8],
}

impl DupKey {
    /// The key of `msg`, from participant `participant`, whose DE 11 is `stan`.
    pub(crate) fn of(participant: usize, stan: Stan, msg: &Msg<'_>) -> Self {
        let mut terminal = [b' '; 8];
        if let Some(t) = msg.terminal_id() {
            let n = t.len().min(8);
            terminal[..n].copy_from_slice(&t[..n]);
        }
        Self {
            participant,
            class: msg.mti().class(),
            stan: stan.value(),
            time: msg.transmission_time().map_or(0, |t| t.value()),
            terminal,
        }
    }

    /// The MTI class.
    pub(crate) fn class(&self) -> u8 {
        self.class
    }

    /// DE 11.
    pub(crate) fn stan(&self) -> u32 {
        self.stan
    }

    /// DE 7.
    pub(crate) fn time(&self) -> u64 {
        self.time
    }

    /// DE 41, space-padded.
    pub(crate) fn terminal(&self) -> [u8; 8] {
        self.terminal
    }
}
