//! Runnable examples of the Arrow data connectors. This library is empty: the examples live in
//! this folder and run from the workspace root, e.g. `cargo run --example quickstart`.
