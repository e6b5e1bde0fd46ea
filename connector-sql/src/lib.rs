#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod sql;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
