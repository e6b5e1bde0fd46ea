//! What a backend declares it can do. Callers, transfers and the conformance suite read these;
//! a call a backend does not support returns [`crate::ErrorKind::Unsupported`] at once.

use serde::{Deserialize, Serialize};

/// What a source can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools)]
#[non_exhaustive]
pub struct SourceCapabilities {
    /// Projection is applied by the backend (fewer bytes move).
    pub projection_pushdown: bool,
    /// Filters are applied by the backend. If false, the core applies them after the read.
    pub filter_pushdown: bool,
    /// Limits are applied by the backend.
    pub limit_pushdown: bool,
    /// [`crate::Source::plan`] can return more than one partition.
    pub partitioned_reads: bool,
    /// [`crate::ReadTarget::Query`] is accepted.
    pub native_query: bool,
    /// All partitions of one plan read one consistent snapshot.
    pub consistent_snapshot: bool,
}

impl SourceCapabilities {
    /// Nothing pushed down, one partition, no native query.
    #[must_use]
    pub const fn none() -> Self {
        Self {
            projection_pushdown: false,
            filter_pushdown: false,
            limit_pushdown: false,
            partitioned_reads: false,
            native_query: false,
            consistent_snapshot: false,
        }
    }

    /// Builder: projection pushdown.
    #[must_use]
    pub const fn with_projection_pushdown(mut self) -> Self {
        self.projection_pushdown = true;
        self
    }

    /// Builder: filter pushdown.
    #[must_use]
    pub const fn with_filter_pushdown(mut self) -> Self {
        self.filter_pushdown = true;
        self
    }

    /// Builder: limit pushdown.
    #[must_use]
    pub const fn with_limit_pushdown(mut self) -> Self {
        self.limit_pushdown = true;
        self
    }

    /// Builder: partitioned reads.
    #[must_use]
    pub const fn with_partitioned_reads(mut self) -> Self {
        self.partitioned_reads = true;
        self
    }

    /// Builder: native queries.
    #[must_use]
    pub const fn with_native_query(mut self) -> Self {
        self.native_query = true;
        self
    }

    /// Builder: consistent snapshot across partitions.
    #[must_use]
    pub const fn with_consistent_snapshot(mut self) -> Self {
        self.consistent_snapshot = true;
        self
    }
}

/// What a sink can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools)]
#[non_exhaustive]
pub struct SinkCapabilities {
    /// [`crate::WriteMode::Append`].
    pub append: bool,
    /// [`crate::WriteMode::Overwrite`].
    pub overwrite: bool,
    /// [`crate::WriteMode::Upsert`].
    pub upsert: bool,
    /// [`crate::WriteMode::Delete`].
    pub delete: bool,
    /// Creates a missing target from the stream's schema.
    pub create_if_missing: bool,
    /// [`crate::SchemaDriftPolicy::AddColumns`] is supported.
    pub add_columns: bool,
    /// A failed write leaves the target unchanged.
    pub atomic: bool,
}

impl SinkCapabilities {
    /// Nothing.
    #[must_use]
    pub const fn none() -> Self {
        Self {
            append: false,
            overwrite: false,
            upsert: false,
            delete: false,
            create_if_missing: false,
            add_columns: false,
            atomic: false,
        }
    }

    /// Builder: append.
    #[must_use]
    pub const fn with_append(mut self) -> Self {
        self.append = true;
        self
    }

    /// Builder: overwrite.
    #[must_use]
    pub const fn with_overwrite(mut self) -> Self {
        self.overwrite = true;
        self
    }

    /// Builder: upsert.
    #[must_use]
    pub const fn with_upsert(mut self) -> Self {
        self.upsert = true;
        self
    }

    /// Builder: delete.
    #[must_use]
    pub const fn with_delete(mut self) -> Self {
        self.delete = true;
        self
    }

    /// Builder: create if missing.
    #[must_use]
    pub const fn with_create_if_missing(mut self) -> Self {
        self.create_if_missing = true;
        self
    }

    /// Builder: add columns on drift.
    #[must_use]
    pub const fn with_add_columns(mut self) -> Self {
        self.add_columns = true;
        self
    }

    /// Builder: atomic writes.
    #[must_use]
    pub const fn with_atomic(mut self) -> Self {
        self.atomic = true;
        self
    }

    /// Whether `mode` is supported.
    #[must_use]
    pub fn supports(&self, mode: &crate::WriteMode) -> bool {
        match mode {
            crate::WriteMode::Append => self.append,
            crate::WriteMode::Overwrite => self.overwrite,
            crate::WriteMode::Upsert(_) => self.upsert,
            crate::WriteMode::Delete(_) => self.delete,
        }
    }
}
