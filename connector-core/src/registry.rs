//! The typed registry: build connectors from configuration.
//!
//! Each connector kind registers a [`ConnectorFactory`] with its serde config type. Applications
//! then build connectors from YAML, JSON or TOML text such as
//!
//! ```yaml
//! type: postgres
//! host: 127.0.0.1
//! user: app
//! password: ${PG_PASSWORD}
//! ```
//!
//! `${NAME}` is replaced by the environment variable `NAME` in every string value (an unset
//! variable is an error that names it; `$${` writes a literal `${`). Interpolation runs on the
//! parsed values, never on the raw text, so a variable's value cannot inject configuration.
//! An unknown `type` lists the registered kinds and names the crate and Cargo feature that would
//! add it. [`Registry::kinds`] lists every kind with its JSON Schema.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::capability::{SinkCapabilities, SourceCapabilities};
use crate::connector::{Sink, Source};
use crate::error::{Error, ErrorKind, Result};

/// A built connector: a source, a sink, or both.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    /// The source side, if the kind reads.
    pub source: Option<Arc<dyn Source>>,
    /// The sink side, if the kind writes.
    pub sink: Option<Arc<dyn Sink>>,
}

impl Connector {
    /// A connector that only reads.
    pub fn source(source: impl Source + 'static) -> Self {
        Self {
            source: Some(Arc::new(source)),
            sink: None,
        }
    }

    /// A connector that only writes.
    pub fn sink(sink: impl Sink + 'static) -> Self {
        Self {
            source: None,
            sink: Some(Arc::new(sink)),
        }
    }

    /// A connector that reads and writes.
    pub fn both(source: impl Source + 'static, sink: impl Sink + 'static) -> Self {
        Self {
            source: Some(Arc::new(source)),
            sink: Some(Arc::new(sink)),
        }
    }

    /// The source side, or an [`ErrorKind::Unsupported`] error.
    pub fn as_source(&self) -> Result<Arc<dyn Source>> {
        self.source
            .clone()
            .ok_or_else(|| Error::unsupported("this connector cannot be read from"))
    }

    /// The sink side, or an [`ErrorKind::Unsupported`] error.
    pub fn as_sink(&self) -> Result<Arc<dyn Sink>> {
        self.sink
            .clone()
            .ok_or_else(|| Error::unsupported("this connector cannot be written to"))
    }

    /// Test the connection of every side.
    pub async fn check(&self) -> Result<()> {
        if let Some(s) = &self.source {
            s.check().await?;
        }
        if let Some(s) = &self.sink {
            s.check().await?;
        }
        Ok(())
    }
}

/// What a kind can do, as listed by [`Registry::kinds`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCapabilities {
    /// Source capabilities, if the kind reads.
    pub source: Option<SourceCapabilities>,
    /// Sink capabilities, if the kind writes.
    pub sink: Option<SinkCapabilities>,
}

/// Builds one kind of connector from its typed config.
#[async_trait]
pub trait ConnectorFactory: Send + Sync + 'static {
    /// The config, without the `type` field. Put secrets in [`crate::Secret`] fields.
    type Config: DeserializeOwned + schemars::JsonSchema + Send + 'static;

    /// The value of `type` in configs, e.g. `"postgres"`.
    fn kind(&self) -> &'static str;

    /// One line saying what the kind connects to.
    fn description(&self) -> &'static str;

    /// What connectors of this kind can do.
    fn capabilities(&self) -> KindCapabilities;

    /// Build a connector. Should not contact the peer (use [`Connector::check`] for that).
    async fn build(&self, config: Self::Config) -> Result<Connector>;
}

/// The object-safe face of a [`ConnectorFactory`].
#[async_trait]
trait ErasedFactory: Send + Sync {
    fn kind(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn capabilities(&self) -> KindCapabilities;
    fn schema(&self) -> serde_json::Value;
    async fn build(&self, config: serde_json::Value) -> Result<Connector>;
}

#[async_trait]
impl<F: ConnectorFactory> ErasedFactory for F {
    fn kind(&self) -> &'static str {
        ConnectorFactory::kind(self)
    }
    fn description(&self) -> &'static str {
        ConnectorFactory::description(self)
    }
    fn capabilities(&self) -> KindCapabilities {
        ConnectorFactory::capabilities(self)
    }
    fn schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(F::Config)).unwrap_or(serde_json::Value::Null)
    }
    async fn build(&self, config: serde_json::Value) -> Result<Connector> {
        let kind = ConnectorFactory::kind(self);
        let typed: F::Config = serde_json::from_value(config).map_err(|e| {
            Error::invalid_config(format!("invalid {kind} config: {e}"))
                .with_connector(kind)
                .with_operation("build")
        })?;
        ConnectorFactory::build(self, typed)
            .await
            .map_err(|e| e.with_connector(kind).with_operation("build"))
    }
}

/// A registered kind, as listed by [`Registry::kinds`].
#[derive(Debug, Clone, Serialize)]
pub struct KindInfo {
    /// The `type` value.
    pub kind: &'static str,
    /// One line.
    pub description: &'static str,
    /// What it can do.
    pub capabilities: KindCapabilities,
    /// JSON Schema of the config (without `type`).
    pub config_schema: serde_json::Value,
}

/// Where a kind this build may not include lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownKind {
    /// The `type` value.
    pub kind: &'static str,
    /// The crate that provides it.
    pub crate_name: &'static str,
    /// The Cargo feature of that crate that enables it.
    pub feature: &'static str,
}

/// Every kind the project provides, so an unknown `type` can say how to get it.
pub const KNOWN_KINDS: &[KnownKind] = &[
    KnownKind {
        kind: "memory",
        crate_name: "connector-core",
        feature: "(always on)",
    },
    KnownKind {
        kind: "csv",
        crate_name: "connector-file",
        feature: "csv",
    },
    KnownKind {
        kind: "json",
        crate_name: "connector-file",
        feature: "json",
    },
    KnownKind {
        kind: "parquet",
        crate_name: "connector-file",
        feature: "parquet",
    },
    KnownKind {
        kind: "excel",
        crate_name: "connector-file",
        feature: "excel",
    },
    KnownKind {
        kind: "avro",
        crate_name: "connector-file",
        feature: "avro",
    },
    KnownKind {
        kind: "xml",
        crate_name: "connector-file",
        feature: "xml",
    },
    KnownKind {
        kind: "sql_insert",
        crate_name: "connector-file",
        feature: "sql-insert",
    },
    KnownKind {
        kind: "postgres",
        crate_name: "connector-sql",
        feature: "postgres",
    },
    KnownKind {
        kind: "mysql",
        crate_name: "connector-sql",
        feature: "mysql",
    },
    KnownKind {
        kind: "sqlite",
        crate_name: "connector-sql",
        feature: "sqlite",
    },
    KnownKind {
        kind: "mssql",
        crate_name: "connector-sql",
        feature: "mssql",
    },
    KnownKind {
        kind: "oracle",
        crate_name: "connector-sql",
        feature: "oracle",
    },
    KnownKind {
        kind: "snowflake",
        crate_name: "connector-sql",
        feature: "snowflake",
    },
    KnownKind {
        kind: "mongodb",
        crate_name: "connector-nosql",
        feature: "mongodb",
    },
    KnownKind {
        kind: "s3",
        crate_name: "connector-object-store",
        feature: "s3",
    },
    KnownKind {
        kind: "azure",
        crate_name: "connector-object-store",
        feature: "azure",
    },
    KnownKind {
        kind: "gcs",
        crate_name: "connector-object-store",
        feature: "gcs",
    },
    KnownKind {
        kind: "http_files",
        crate_name: "connector-object-store",
        feature: "http",
    },
    KnownKind {
        kind: "rest",
        crate_name: "connector-http",
        feature: "rest",
    },
    KnownKind {
        kind: "graphql",
        crate_name: "connector-http",
        feature: "graphql",
    },
    KnownKind {
        kind: "atlas",
        crate_name: "connector-catalog",
        feature: "atlas",
    },
];

/// Configuration text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// TOML.
    Toml,
}

impl ConfigFormat {
    /// Guess from a file extension (`json`, `yaml`/`yml`, `toml`).
    #[must_use]
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            _ => None,
        }
    }
}

/// Parse configuration text into a JSON value (before interpolation).
pub fn parse_config(text: &str, format: ConfigFormat) -> Result<serde_json::Value> {
    let err = |what: &str, e: &dyn fmt::Display| {
        Error::invalid_config(format!("cannot parse {what} config: {e}"))
            .with_operation("parse config")
    };
    match format {
        ConfigFormat::Json => serde_json::from_str(text).map_err(|e| err("JSON", &e)),
        ConfigFormat::Yaml => serde_yaml_ng::from_str(text).map_err(|e| err("YAML", &e)),
        ConfigFormat::Toml => toml::from_str::<toml::Value>(text)
            .map_err(|e| err("TOML", &e))
            .and_then(|v| serde_json::to_value(v).map_err(|e| err("TOML", &e))),
    }
}

/// Replace `${NAME}` in every string value by `lookup(NAME)`. `$${` is a literal `${`.
/// An unset variable is an [`ErrorKind::InvalidConfig`] error naming the variable and the key.
pub fn interpolate(
    value: &mut serde_json::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    fn walk(
        v: &mut serde_json::Value,
        path: &mut Vec<String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<()> {
        match v {
            serde_json::Value::String(s) if s.contains('$') => {
                *s = interpolate_str(s, lookup).map_err(|var| {
                    Error::invalid_config(format!(
                        "environment variable {var} is not set (used by `{}`)",
                        path.join(".")
                    ))
                    .with_operation("interpolate config")
                    .with_context("variable", var)
                })?;
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter_mut().enumerate() {
                    path.push(i.to_string());
                    walk(x, path, lookup)?;
                    path.pop();
                }
            }
            serde_json::Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    path.push(k.clone());
                    walk(x, path, lookup)?;
                    path.pop();
                }
            }
            _ => {}
        }
        Ok(())
    }
    walk(value, &mut Vec::new(), lookup)
}

fn interpolate_str(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            if let Some(end) = tail.find('}') {
                let name = &tail[..end];
                out.push_str(&lookup(name).ok_or_else(|| name.to_owned())?);
                rest = &tail[end + 1..];
            } else {
                out.push_str(after);
                rest = "";
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Registered connector kinds.
#[derive(Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Box<dyn ErasedFactory>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the kinds connector-core provides (`memory`).
    #[must_use]
    pub fn with_core() -> Self {
        let mut r = Self::new();
        r.register(MemoryFactory::default());
        r
    }

    /// Register a factory; a later registration of the same kind replaces the earlier one.
    pub fn register<F: ConnectorFactory>(&mut self, factory: F) -> &mut Self {
        self.factories
            .insert(ConnectorFactory::kind(&factory), Box::new(factory));
        self
    }

    /// The registered kinds with descriptions, capabilities and config schemas.
    #[must_use]
    pub fn kinds(&self) -> Vec<KindInfo> {
        self.factories
            .values()
            .map(|f| KindInfo {
                kind: f.kind(),
                description: f.description(),
                capabilities: f.capabilities(),
                config_schema: f.schema(),
            })
            .collect()
    }

    /// Build from a parsed config value with a `type` field, interpolating `${ENV}` from the process environment.
    pub async fn build_value(&self, config: serde_json::Value) -> Result<Connector> {
        self.build_value_with(config, &|k| std::env::var(k).ok())
            .await
    }

    /// Like [`Registry::build_value`], with a custom variable lookup.
    pub async fn build_value_with(
        &self,
        mut config: serde_json::Value,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Connector> {
        let serde_json::Value::Object(map) = &mut config else {
            return Err(Error::invalid_config(
                "a connector config must be a map with a `type` field",
            )
            .with_operation("build"));
        };
        let kind = match map.remove("type") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(Error::invalid_config(format!(
                    "`type` must be a string, found {other}"
                ))
                .with_operation("build"));
            }
            None => {
                return Err(Error::invalid_config("the config has no `type` field")
                    .with_operation("build")
                    .with_context("registered", self.kind_list()));
            }
        };
        let factory = self
            .factories
            .get(kind.as_str())
            .ok_or_else(|| self.unknown_kind(&kind))?;
        interpolate(&mut config, lookup).map_err(|e| e.with_connector(factory.kind()))?;
        factory.build(config).await
    }

    /// Build from configuration text.
    pub async fn build_str(&self, text: &str, format: ConfigFormat) -> Result<Connector> {
        self.build_value(parse_config(text, format)?).await
    }

    /// Build from a JSON string.
    pub async fn build_json(&self, text: &str) -> Result<Connector> {
        self.build_str(text, ConfigFormat::Json).await
    }

    /// Build from a YAML string.
    pub async fn build_yaml(&self, text: &str) -> Result<Connector> {
        self.build_str(text, ConfigFormat::Yaml).await
    }

    /// Build from a TOML string.
    pub async fn build_toml(&self, text: &str) -> Result<Connector> {
        self.build_str(text, ConfigFormat::Toml).await
    }

    /// Build from configuration text and test its connection.
    pub async fn test_connection(&self, text: &str, format: ConfigFormat) -> Result<()> {
        self.build_str(text, format).await?.check().await
    }

    fn kind_list(&self) -> String {
        self.factories
            .keys()
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn unknown_kind(&self, kind: &str) -> Error {
        let hint = KNOWN_KINDS.iter().find(|k| k.kind == kind).map_or_else(
            || "no crate of this project provides it".to_owned(),
            |k| {
                format!(
                    "it is provided by `{}` with Cargo feature `{}`",
                    k.crate_name, k.feature
                )
            },
        );
        Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "unknown connector type {kind:?}: {hint}; registered types: {}",
                self.kind_list()
            ),
        )
        .with_operation("build")
    }
}

/// Config of the `memory` kind.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Name of a store shared by every memory connector built from the same factory.
    #[serde(default)]
    pub store: Option<String>,
}

/// Factory of the `memory` kind: connectors naming the same `store` share tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryFactory {
    stores: Arc<std::sync::Mutex<BTreeMap<String, crate::MemoryStore>>>,
}

#[async_trait]
impl ConnectorFactory for MemoryFactory {
    type Config = MemoryConfig;

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn description(&self) -> &'static str {
        "In-process tables (reference backend, tests, staging)"
    }

    fn capabilities(&self) -> KindCapabilities {
        let store = crate::MemoryStore::new();
        KindCapabilities {
            source: Some(store.source().capabilities()),
            sink: Some(store.sink().capabilities()),
        }
    }

    async fn build(&self, config: MemoryConfig) -> Result<Connector> {
        let name = config.store.unwrap_or_default();
        let store = self
            .stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name)
            .or_default()
            .clone();
        Ok(Connector::both(store.source(), store.sink()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation() {
        let lookup = |k: &str| (k == "PW").then(|| "s3cret".to_owned());
        assert_eq!(interpolate_str("a${PW}b", &lookup).unwrap(), "as3cretb");
        assert_eq!(interpolate_str("$${PW} $5", &lookup).unwrap(), "${PW} $5");
        assert_eq!(interpolate_str("${NOPE}", &lookup).unwrap_err(), "NOPE");
    }

    #[tokio::test]
    async fn unknown_type_names_feature_and_registered() {
        let r = Registry::with_core();
        let e = r
            .build_json(r#"{"type":"postgres","host":"x"}"#)
            .await
            .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("connector-sql") && s.contains("`postgres`") && s.contains("memory"),
            "{s}"
        );
    }

    #[tokio::test]
    async fn unset_variable_is_named() {
        let r = Registry::with_core();
        let e = r
            .build_value_with(
                serde_json::json!({"type":"memory","store":"${X_UNSET}"}),
                &|_| None,
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(
            e.to_string().contains("X_UNSET") && e.to_string().contains("store"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn yaml_toml_json_all_build() {
        let r = Registry::with_core();
        r.build_yaml("type: memory\nstore: a\n")
            .await
            .unwrap()
            .check()
            .await
            .unwrap();
        r.build_toml("type = \"memory\"\nstore = \"a\"\n")
            .await
            .unwrap();
        r.build_json(r#"{"type":"memory"}"#).await.unwrap();
        let e = r
            .build_json(r#"{"type":"memory","bogus":1}"#)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(r.kinds()[0].config_schema.is_object());
    }
}
