//! How one connection frames and encodes: `corridor-wire`'s [`Wire`], the framing and
//! dialect pair every crate shares.

pub use corridor_wire::{Framing, Wire};
