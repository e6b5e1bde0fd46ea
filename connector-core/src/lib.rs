#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod capability;
pub mod connector;
pub mod drift;
pub mod error;
pub mod ext;
pub mod layers;
pub mod memory;
pub mod registry;
pub mod request;
pub mod residual;
pub mod secret;
pub mod stream;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod transfer;

pub use arrow;
pub use async_trait::async_trait;

pub use capability::{SinkCapabilities, SourceCapabilities};
pub use connector::{Sink, Source};
pub use error::{Error, ErrorKind, ErrorStatus, Location, Result, ResultExt};
pub use ext::{SinkExt, SourceExt, collect};
pub use layers::{CircuitBreakerLayer, CircuitState, Layer, LayerExt, RetryLayer, TimeoutLayer};
pub use memory::{MemorySink, MemorySource, MemoryStore};
pub use request::{
    CmpOp, DatasetInfo, Expr, Literal, Partition, ReadRequest, ReadTarget, SchemaDriftPolicy,
    WriteMode, WriteReport, WriteRequest,
};
pub use secret::Secret;
pub use stream::{RecordBatchStream, RecordBatchStreamAdapter, SendableRecordBatchStream};
pub use transfer::{Progress, TransferOptions, TransferSummary, transfer};
