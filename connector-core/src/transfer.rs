//! Transfers from any source to any sink. (Being built.)

/// Options of a transfer.
#[derive(Debug, Clone, Default)]
pub struct TransferOptions {}

/// What a transfer did.
#[derive(Debug, Clone, Default)]
pub struct TransferSummary {}

/// Move data from a source to a sink.
pub fn transfer() {}
