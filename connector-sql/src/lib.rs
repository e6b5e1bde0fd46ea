#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod sql;

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod shared;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// Register every database kind this build includes (`postgres`, `mysql`, `sqlite`, each behind
/// its Cargo feature) with a [`connector_core::registry::Registry`].
pub fn register(registry: &mut connector_core::registry::Registry) {
    #[cfg(feature = "postgres")]
    postgres::register(registry);
    #[cfg(feature = "mysql")]
    registry.register(mysql::MySqlFactory);
    #[cfg(feature = "sqlite")]
    registry.register(sqlite::SqliteFactory);
    let _ = registry;
}
