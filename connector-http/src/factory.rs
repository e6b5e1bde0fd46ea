//! Registry factories for the `rest` and `graphql` kinds.

use async_trait::async_trait;
use connector_core::registry::{Connector, ConnectorFactory, KindCapabilities, Registry};
use connector_core::{Result, Sink, Source};

/// Factory of the `rest` kind.
#[cfg(feature = "rest")]
#[derive(Debug, Clone, Copy, Default)]
pub struct RestFactory;

#[cfg(feature = "rest")]
#[async_trait]
impl ConnectorFactory for RestFactory {
    type Config = crate::rest::RestConfig;

    fn kind(&self) -> &'static str {
        "rest"
    }

    fn description(&self) -> &'static str {
        "REST APIs: endpoints as datasets with pagination, auth, rate limits; POST/PUT sink"
    }

    fn capabilities(&self) -> KindCapabilities {
        let r = crate::rest::Rest::new(crate::rest::RestConfig {
            base_url: "http://localhost/".into(),
            client: crate::ClientSettings::default(),
            endpoints: Vec::new(),
            sink: crate::SinkConfig::default(),
        });
        match r {
            Ok(r) => KindCapabilities {
                source: Some(Source::capabilities(&r)),
                sink: Some(Sink::capabilities(&r)),
            },
            Err(_) => KindCapabilities::default(),
        }
    }

    async fn build(&self, config: Self::Config) -> Result<Connector> {
        let r = crate::rest::Rest::new(config)?;
        Ok(Connector::both(r.clone(), r))
    }
}

/// Factory of the `graphql` kind.
#[cfg(feature = "graphql")]
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphQLFactory;

#[cfg(feature = "graphql")]
#[async_trait]
impl ConnectorFactory for GraphQLFactory {
    type Config = crate::graphql::GraphQLConfig;

    fn kind(&self) -> &'static str {
        "graphql"
    }

    fn description(&self) -> &'static str {
        "GraphQL endpoints: raw or typed queries with page and Relay cursor pagination"
    }

    fn capabilities(&self) -> KindCapabilities {
        KindCapabilities {
            source: Some(connector_core::SourceCapabilities::none().with_native_query()),
            sink: None,
        }
    }

    async fn build(&self, config: Self::Config) -> Result<Connector> {
        Ok(Connector::source(crate::graphql::GraphQL::new(config)?))
    }
}

/// Register every kind this build of connector-http includes.
pub fn register(registry: &mut Registry) {
    #[cfg(feature = "rest")]
    registry.register(RestFactory);
    #[cfg(feature = "graphql")]
    registry.register(GraphQLFactory);
    let _ = registry;
}
