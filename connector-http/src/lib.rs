#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod client;
mod csv_body;
pub mod factory;
#[cfg(feature = "graphql")]
pub mod graphql;
pub mod records;
#[cfg(feature = "rest")]
pub mod rest;
#[cfg(feature = "rest")]
mod sink;

pub use client::{ApiKeyLocation, Auth, ClientConfig, ClientSettings, HttpClient, RetryConfig};
pub use factory::register;
#[cfg(feature = "graphql")]
pub use graphql::{GraphQL, GraphQLConfig, GraphQLPagination, QueryConfig};
#[cfg(feature = "rest")]
pub use rest::{Endpoint, Pagination, Rest, RestConfig, SinkConfig, SinkFormat};
