//! A string that never prints: passwords, tokens, keys.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string. `Debug` and `Display` print `***`; read it with [`Secret::expose`] only
/// where it is sent to the peer. Deserializes from a plain string (so configs stay plain), and
/// its JSON Schema is a write-only string.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call this only to hand the value to the peer.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for an empty secret.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(v: String) -> Self {
        Self(v)
    }
}

impl From<&str> for Secret {
    fn from(v: &str) -> Self {
        Self(v.to_owned())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "writeOnly": true,
            "description": "A secret; write `${ENV_VAR}` to take it from the environment."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Cfg {
            user: String,
            password: Secret,
        }
        let c: Cfg = serde_json::from_str(r#"{"user":"u","password":"hunter2"}"#).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.password.to_string().contains("hunter2"));
        assert_eq!(c.password.expose(), "hunter2");
    }
}
