//! Data catalog backends (Apache Atlas).
//!
//! **Not implemented yet.** This crate holds the place of the catalog family in the workspace
//! layout; it exports nothing. No Apache Atlas server can run on the development machines, so
//! when it is built it will be tested against request generation and error mapping only, and
//! the README's support table will say so.
