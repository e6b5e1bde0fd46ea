//! Layers that wrap any [`crate::Source`] or [`crate::Sink`]: retry, circuit breaker, timeout.
//! (Being built; see the retry, circuit and timeout modules.)
