//! mysql backend (being built).
