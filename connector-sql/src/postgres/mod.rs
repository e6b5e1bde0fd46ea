//! postgres backend (being built).
