#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod format;

pub use format::{BadRow, BadRowLog, BadRows, ByteSource, FileFormat, FormatReadOptions, FormatWriter, InMemoryBytes};
