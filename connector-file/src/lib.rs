#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod avro;
pub mod excel;
pub mod format;

pub use format::{BadRow, BadRowLog, BadRows, ByteSource, FileFormat, FormatReadOptions, FormatWriter, InMemoryBytes};
pub use avro::{AvroCompression, AvroFormat};
pub use excel::{ExcelFormat, HeaderRow, SheetSelector};
