//! Layers that wrap any [`Source`](crate::Source) or [`Sink`](crate::Sink): timeout, retry and
//! circuit breaker.
//!
//! A [`Layer`] turns one connector into another that adds a behaviour and forwards every trait
//! method to the connector it wraps. [`LayerExt::layer`] applies a layer; the first layer applied
//! is the innermost (closest to the backend), and each later `.layer(..)` wraps everything before
//! it, so a stack reads from the backend outwards:
//!
//! ```
//! use std::time::Duration;
//!
//! use connector_core::layers::{CircuitBreakerLayer, LayerExt, RetryLayer, TimeoutLayer};
//! use connector_core::arrow::array::{Int64Array, RecordBatch};
//! use connector_core::{MemoryStore, ReadRequest, SinkExt, Source, SourceExt, WriteRequest};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> connector_core::Result<()> {
//! let store = MemoryStore::new();
//! let batch = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)])?;
//! store.sink().write_batch(WriteRequest::append("numbers"), batch).await?;
//!
//! let source = store
//!     .source()
//!     .layer(TimeoutLayer::new(Duration::from_secs(30)))   // innermost: one deadline per attempt
//!     .layer(RetryLayer::new().with_max_attempts(4))      // retries temporary errors and timeouts
//!     .layer(CircuitBreakerLayer::new(5, Duration::from_secs(60))); // outermost: fails fast
//!
//! source.check().await?;
//! let rows = source.read_batch(ReadRequest::dataset("numbers")).await?;
//! assert_eq!(rows.num_rows(), 3);
//! assert_eq!(source.state(), connector_core::layers::CircuitState::Closed);
//! # Ok(())
//! # }
//! ```
//!
//! # Recommended order
//!
//! **Timeout innermost, then retry, then the circuit breaker outermost.**
//!
//! - The [timeout](TimeoutLayer) sits closest to the backend so that *each attempt* has its own
//!   deadline. A hung call becomes an [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error, which
//!   is temporary, so the retry layer above it can try again. A timeout outside the retry layer
//!   would instead bound the whole retry loop, and one hung attempt would use up all the time.
//! - The [retry layer](RetryLayer) turns a run of temporary failures into either a success or one
//!   final error marked [`ErrorStatus::Persistent`](crate::ErrorStatus::Persistent).
//! - The [circuit breaker](CircuitBreakerLayer) outermost sees one outcome per *logical* call
//!   (after retries), so its threshold counts calls that really failed, not attempts. When it is
//!   open it fails at once, without sleeping through a retry schedule and without touching the
//!   peer. Its [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen) error is temporary and
//!   carries the remaining cool-down as [`Error::retry_after`](crate::Error::retry_after), so a
//!   retry placed further outside (a job scheduler, a transfer-level retry) waits exactly as long
//!   as needed and then lets the half-open probe through.
//!
//! # Reads are retried only before the first batch
//!
//! A read stream cannot be rewound. The retry layer re-opens a partition after an error only while
//! the stream has not yet yielded a batch; after the first batch, an error is passed through marked
//! persistent. A read through these layers therefore never yields a row twice. Writes consume a
//! stream that cannot be replayed either, so [`Sink::write`](crate::Sink::write) is never retried
//! (only [`Sink::check`](crate::Sink::check) is).
//!
//! # Every method is forwarded
//!
//! The wrapper impls carry `#[deny(clippy::missing_trait_methods)]`: when a method is added to
//! [`Source`](crate::Source) or [`Sink`](crate::Sink), even one with a default body, these layers
//! stop compiling under clippy until they forward it explicitly.

mod circuit;
mod retry;
mod timeout;

pub use circuit::{Circuit, CircuitBreaker, CircuitBreakerLayer, CircuitState};
pub use retry::{Retry, RetryEvent, RetryLayer};
pub use timeout::{Timeout, TimeoutLayer};

/// Wraps a connector `S` into another one, in the spirit of tower's and `OpenDAL`'s `Layer`.
///
/// The layers of this module accept any `S`; their output implements
/// [`Source`](crate::Source) when `S` does and [`Sink`](crate::Sink) when `S` does, so one layer
/// value can wrap both the source and the sink of the same peer.
pub trait Layer<S> {
    /// The wrapped connector.
    type Output;

    /// Wrap `inner`.
    fn apply(&self, inner: S) -> Self::Output;
}

/// A reference to a layer is a layer, so one layer value can wrap several connectors (for
/// example a source and a sink that share one [`Circuit`]).
impl<S, L: Layer<S> + ?Sized> Layer<S> for &L {
    type Output = L::Output;

    fn apply(&self, inner: S) -> Self::Output {
        (**self).apply(inner)
    }
}

/// Adds [`LayerExt::layer`] to every value, so stacks read in order:
/// `source.layer(a).layer(b)` wraps `source` in `a`, then the result in `b`.
pub trait LayerExt: Sized {
    /// Wrap `self` in `layer`. Layers applied later sit further out.
    fn layer<L: Layer<Self>>(self, layer: L) -> L::Output {
        layer.apply(self)
    }
}

impl<T> LayerExt for T {}
