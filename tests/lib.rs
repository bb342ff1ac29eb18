//! Helpers shared by Corridor's end-to-end and interoperability tests.
//!
//! # Layout
//!
//! - [`python`]: a Python interpreter with the test's pinned PyPI packages, provisioned into
//!   a virtual environment under `target/` the first time a test asks for it.

#![forbid(unsafe_code)]

#[path = "python.rs"]
pub mod python;
