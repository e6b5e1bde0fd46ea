//! Sink and factory pieces that are the same in every SQL backend (crate-internal).

#[cfg(any(feature = "mysql", feature = "sqlite"))]
use std::time::Instant;

#[cfg(any(feature = "mysql", feature = "sqlite"))]
use arrow::datatypes::Schema;
use connector_core::registry::KindCapabilities;
#[cfg(any(feature = "mysql", feature = "sqlite"))]
use connector_core::{Error, ErrorKind, Location, Result, WriteMode, WriteReport};
use connector_core::{SinkCapabilities, SourceCapabilities};

/// What every SQL backend can push into a read (PostgreSQL adds consistent snapshots).
pub(crate) fn source_caps() -> SourceCapabilities {
    SourceCapabilities::none()
        .with_projection_pushdown()
        .with_filter_pushdown()
        .with_limit_pushdown()
        .with_partitioned_reads()
        .with_native_query()
}

/// What every SQL backend's sink supports: all write modes, table creation, added columns, one
/// transaction per write.
pub(crate) fn sink_caps() -> SinkCapabilities {
    SinkCapabilities::none()
        .with_append()
        .with_overwrite()
        .with_upsert()
        .with_delete()
        .with_create_if_missing()
        .with_add_columns()
        .with_atomic()
}

/// A factory's capabilities for a kind that is both a source (`source`) and a sink.
pub(crate) fn kind_caps(source: SourceCapabilities) -> KindCapabilities {
    KindCapabilities {
        source: Some(source),
        sink: Some(sink_caps()),
    }
}

/// The key columns of an upsert or delete (empty for other modes), checked: at least one, and
/// each in `incoming`.
#[cfg(any(feature = "mysql", feature = "sqlite"))]
pub(crate) fn write_keys<'a>(
    mode: &'a WriteMode,
    incoming: &Schema,
    target: &str,
) -> Result<&'a [String]> {
    let keys: &[String] = match mode {
        WriteMode::Upsert(k) | WriteMode::Delete(k) => k,
        _ => &[],
    };
    if matches!(mode, WriteMode::Upsert(_) | WriteMode::Delete(_)) && keys.is_empty() {
        return Err(Error::invalid_input(
            "upsert and delete need at least one key column",
            Location::table(target),
        ));
    }
    for k in keys {
        if incoming.index_of(k).is_err() {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!("key column {k:?} is not in the data"),
            )
            .with_location(Location::table(target).with_column(k.clone())));
        }
    }
    Ok(keys)
}

/// Complete the report of a committed write of `rows` rows to `target` (`deleted`: rows a
/// delete removed, reported for [`WriteMode::Delete`] only).
#[cfg(any(feature = "mysql", feature = "sqlite"))]
pub(crate) fn finish_report(
    mut report: WriteReport,
    mode: &WriteMode,
    rows: u64,
    deleted: u64,
    started: Instant,
    target: &str,
) -> WriteReport {
    report.rows = rows;
    if matches!(mode, WriteMode::Delete(_)) {
        report.rows_deleted = Some(deleted);
    }
    report.elapsed = started.elapsed();
    report.outputs.push(target.to_owned());
    report
}
