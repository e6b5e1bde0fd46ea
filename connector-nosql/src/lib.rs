//! NoSQL backends (MongoDB and others).
//!
//! **Not implemented yet.** This crate holds the place of the NoSQL family in the workspace
//! layout; it exports nothing. The support table in the repository README tracks its status.
//! A MongoDB-compatible test peer (SecantusDB) is documented in `shared/PEERS.md` for when the
//! backend is built.
