//! sqlite backend (being built).
