//! The conformance suite. (Being built.)
