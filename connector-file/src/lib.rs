#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod avro;
pub mod compression;
#[cfg(feature = "csv")]
pub mod csv;
pub mod excel;
pub mod factory;
pub mod format;
pub mod formats;
pub mod hive;
#[cfg(feature = "json")]
pub mod json;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod sink;
pub mod source;
pub mod sql_insert;
pub mod store;
pub mod store_error;
mod util;
pub mod xml;

pub use avro::{AvroCompression, AvroFormat};
pub use compression::Compression;
#[cfg(feature = "csv")]
pub use csv::{CsvFormat, CsvOptions};
pub use excel::{ExcelFormat, HeaderRow, SheetSelector};
pub use format::{
    BadRow, BadRowLog, BadRows, ByteSource, FileFormat, FormatReadOptions, FormatWriter,
    InMemoryBytes,
};
pub use formats::FormatRegistry;
#[cfg(feature = "json")]
pub use json::{JsonFormat, JsonLayout, JsonOptions};
#[cfg(feature = "parquet")]
pub use parquet::{ParquetFormat, ParquetOptions};
pub use sink::FileSink;
pub use source::{FileOptions, FileSource};
pub use sql_insert::{SqlDialect, SqlInsertFormat};
pub use store::{ObjectStoreBytes, StoreRoot};
pub use xml::XmlFormat;

/// Every file format this build includes, with default options. Each format adds its line here.
#[must_use]
pub fn default_formats() -> FormatRegistry {
    #[allow(unused_mut)]
    let mut r = FormatRegistry::new();
    #[cfg(feature = "csv")]
    r.register(std::sync::Arc::new(CsvFormat::tsv()));
    #[cfg(feature = "csv")]
    r.register(std::sync::Arc::new(CsvFormat::default()));
    #[cfg(feature = "json")]
    r.register(std::sync::Arc::new(JsonFormat::default()));
    #[cfg(feature = "parquet")]
    r.register(std::sync::Arc::new(ParquetFormat::default()));
    r.register(std::sync::Arc::new(ExcelFormat::default()));
    r.register(std::sync::Arc::new(AvroFormat::default()));
    r.register(std::sync::Arc::new(SqlInsertFormat::default()));
    r.register(std::sync::Arc::new(XmlFormat::default()));
    r
}

/// Register every connector kind this build includes (`csv`, `json`, `parquet`, …). Each kind
/// adds its line here.
pub fn register_all(registry: &mut connector_core::registry::Registry) {
    #[cfg(feature = "csv")]
    registry.register(factory::CsvFactory::default());
    #[cfg(feature = "json")]
    registry.register(factory::JsonFactory::default());
    #[cfg(feature = "parquet")]
    registry.register(factory::ParquetFactory::default());
    registry.register(excel::ExcelFactory::default());
    registry.register(avro::AvroFactory::default());
    registry.register(xml::XmlFactory::default());
    registry.register(sql_insert::SqlInsertFactory::default());
}
