//! The write path: one transaction per write, rows through binary `COPY … FROM STDIN`.

use std::pin::pin;
use std::time::Instant;

use arrow::array::RecordBatch;
use bytes::Bytes;
use connector_core::{
    Error, ErrorKind, Location, SchemaDriftPolicy, SendableRecordBatchStream, WriteMode,
    WriteReport, WriteRequest,
};
use deadpool_postgres::Pool;
use futures::{SinkExt as _, StreamExt as _};
use tokio_postgres::types::Type;

use super::encode::{self, Enc};
use super::error::{map_pg, map_pool, ours};
use super::read::quoted_relation;
use super::sqltext::ident;
use super::types::ddl_type;

const OP: &str = "write";
/// Encoded bytes buffered before they are handed to the connection.
const CHUNK: usize = 1 << 20;
const STAGE: &str = "\"_arrow_connectors_stage\"";

struct TargetColumn {
    name: String,
    ty: Type,
    has_default: bool,
}

fn mismatch(msg: String, table: &str, column: &str) -> Error {
    ours(
        Error::new(ErrorKind::SchemaMismatch, msg)
            .with_location(Location::table(table).with_column(column)),
        OP,
    )
}

/// Write `data` to `request.target` in one transaction.
pub(crate) async fn write(
    pool: &Pool,
    request: WriteRequest,
    mut data: SendableRecordBatchStream,
) -> Result<WriteReport, Error> {
    let start = Instant::now();
    let table = request.target.clone();
    let rel = quoted_relation(&table).map_err(|e| ours(e, OP))?;
    let pg = |e: tokio_postgres::Error| map_pg(&e, OP, Some(&table));
    let incoming = data.schema();
    let keys: Vec<String> = match &request.mode {
        WriteMode::Upsert(k) | WriteMode::Delete(k) => {
            if k.is_empty() {
                return Err(ours(
                    Error::new(
                        ErrorKind::InvalidInput,
                        "upsert and delete need at least one key column",
                    )
                    .with_location(Location::table(&table)),
                    OP,
                ));
            }
            for key in k {
                if incoming.index_of(key).is_err() {
                    return Err(ours(
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!("key column {key:?} is not in the incoming data"),
                        )
                        .with_location(Location::table(&table).with_column(key)),
                        OP,
                    ));
                }
            }
            k.clone()
        }
        _ => Vec::new(),
    };

    let mut client = pool.get().await.map_err(|e| map_pool(e, OP))?;
    let tx = client.transaction().await.map_err(pg)?;
    let mut report = WriteReport::default();

    let exists: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&rel])
        .await
        .map_err(pg)?
        .get(0);
    if !exists {
        if !request.create_if_missing || matches!(request.mode, WriteMode::Delete(_)) {
            return Err(ours(
                Error::new(
                    ErrorKind::NotFound,
                    format!("table {table:?} does not exist"),
                )
                .with_location(Location::table(&table)),
                OP,
            ));
        }
        let mut cols = Vec::with_capacity(incoming.fields().len());
        for f in incoming.fields() {
            let ty = ddl_type(f).map_err(|e| ours(e.with_location(Location::table(&table)), OP))?;
            let nn = if f.is_nullable() { "" } else { " NOT NULL" };
            cols.push(format!("{} {ty}{nn}", ident(f.name())));
        }
        if let WriteMode::Upsert(k) = &request.mode {
            cols.push(format!(
                "PRIMARY KEY ({})",
                k.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
            ));
        }
        tx.batch_execute(&format!("CREATE TABLE {rel} ({})", cols.join(", ")))
            .await
            .map_err(pg)?;
        report.outputs.push(table.clone());
    }

    // The target's columns, types and defaults.
    let stmt = tx
        .prepare(&format!("SELECT * FROM {rel}"))
        .await
        .map_err(pg)?;
    let defaults: Vec<(String, bool)> = tx
        .query(
            "SELECT attname::text, atthasdef OR attidentity <> '' OR attgenerated <> '' FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            &[&rel],
        )
        .await
        .map_err(pg)?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut target: Vec<TargetColumn> = stmt
        .columns()
        .iter()
        .map(|c| TargetColumn {
            name: c.name().to_owned(),
            ty: c.type_().clone(),
            has_default: defaults.iter().any(|(n, d)| n == c.name() && *d),
        })
        .collect();

    // Schema drift: which incoming columns are written, into which target columns.
    let delete_only = matches!(request.mode, WriteMode::Delete(_));
    let mut columns: Vec<(usize, usize)> = Vec::new(); // (incoming index, target index)
    for (i, f) in incoming.fields().iter().enumerate() {
        if delete_only && !keys.contains(f.name()) {
            continue;
        }
        match target.iter().position(|t| t.name == *f.name()) {
            Some(t) => {
                if !encode::compatible(f.data_type(), &target[t].ty) {
                    return Err(mismatch(
                        format!(
                            "column {:?} is {} in the data but {} in the table",
                            f.name(),
                            f.data_type(),
                            target[t].ty.name()
                        ),
                        &table,
                        f.name(),
                    ));
                }
                columns.push((i, t));
            }
            None => match request.schema_drift {
                SchemaDriftPolicy::Fail => {
                    return Err(mismatch(
                        format!("the data has column {:?}, which the table lacks", f.name()),
                        &table,
                        f.name(),
                    ));
                }
                SchemaDriftPolicy::IgnoreExtra => report.columns_ignored.push(f.name().clone()),
                SchemaDriftPolicy::AddColumns => {
                    let ty = ddl_type(f)
                        .map_err(|e| ours(e.with_location(Location::table(&table)), OP))?;
                    tx.batch_execute(&format!(
                        "ALTER TABLE {rel} ADD COLUMN {} {ty}",
                        ident(f.name())
                    ))
                    .await
                    .map_err(pg)?;
                    let s = tx
                        .prepare(&format!("SELECT {} FROM {rel}", ident(f.name())))
                        .await
                        .map_err(pg)?;
                    let ty = s
                        .columns()
                        .first()
                        .map_or(Type::TEXT, |c| c.type_().clone());
                    target.push(TargetColumn {
                        name: f.name().clone(),
                        ty,
                        has_default: false,
                    });
                    report.columns_added.push(f.name().clone());
                    columns.push((i, target.len() - 1));
                }
            },
        }
    }
    if !delete_only
        && request.schema_drift == SchemaDriftPolicy::Fail
        && let Some(t) = target
            .iter()
            .find(|t| !t.has_default && incoming.index_of(&t.name).is_err())
    {
        return Err(mismatch(
            format!(
                "the data has no column {:?}, which the table has (and it has no default)",
                t.name
            ),
            &table,
            &t.name,
        ));
    }
    let col_list = columns
        .iter()
        .map(|(_, t)| ident(&target[*t].name))
        .collect::<Vec<_>>()
        .join(", ");

    // Where COPY writes.
    let mut has_unique = true;
    let copy_target = match &request.mode {
        WriteMode::Append => rel.clone(),
        WriteMode::Overwrite => {
            tx.batch_execute(&format!("TRUNCATE {rel}"))
                .await
                .map_err(pg)?;
            rel.clone()
        }
        WriteMode::Upsert(k) | WriteMode::Delete(k) => {
            if matches!(request.mode, WriteMode::Upsert(_)) {
                has_unique = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass($1) \
                         AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL \
                         AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a \
                              WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey[0:i.indnkeyatts - 1])) \
                           = (SELECT array_agg(k ORDER BY k) FROM unnest($2::text[]) k))",
                        &[&rel, &k],
                    )
                    .await
                    .map_err(pg)?
                    .get(0);
                if !has_unique {
                    // Without a unique index ON CONFLICT cannot be used: UPDATE then INSERT under
                    // a lock that blocks concurrent writers (readers are not blocked).
                    tx.batch_execute(&format!("LOCK TABLE {rel} IN SHARE ROW EXCLUSIVE MODE"))
                        .await
                        .map_err(pg)?;
                }
            }
            tx.batch_execute(&format!(
                "CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT {col_list} FROM {rel} WITH NO DATA"
            ))
            .await
            .map_err(pg)?;
            STAGE.to_owned()
        }
    };

    // COPY the rows.
    let copy_sql = format!("COPY {copy_target} ({col_list}) FROM STDIN (FORMAT binary)");
    let sink = tx.copy_in(copy_sql.as_str()).await.map_err(pg)?;
    let mut sink = pin!(sink);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + (CHUNK >> 2));
    encode::header(&mut buf);
    let ncols = i16::try_from(columns.len())
        .map_err(|_| mismatch("too many columns".into(), &table, ""))?;
    let mut row_base = 0u64;
    while let Some(batch) = data.next().await {
        let batch: RecordBatch = batch?;
        report.bytes += batch.get_array_memory_size() as u64;
        let mut encs = Vec::with_capacity(columns.len());
        for (i, t) in &columns {
            let enc = Enc::new(batch.column(*i), &target[*t].ty).map_err(|m| {
                mismatch(
                    format!("column {:?}: {m}", target[*t].name),
                    &table,
                    &target[*t].name,
                )
            })?;
            encs.push(enc);
        }
        for r in 0..batch.num_rows() {
            buf.extend_from_slice(&ncols.to_be_bytes());
            for (k, e) in encs.iter().enumerate() {
                e.write(r, &mut buf).map_err(|m| {
                    let col = &target[columns[k].1].name;
                    ours(
                        Error::new(ErrorKind::InvalidInput, format!("column {col:?}: {m}"))
                            .with_location(
                                Location::table(&table)
                                    .with_column(col)
                                    .with_row(row_base + r as u64),
                            ),
                        OP,
                    )
                })?;
            }
            if buf.len() >= CHUNK {
                let chunk = Bytes::from(std::mem::replace(
                    &mut buf,
                    Vec::with_capacity(CHUNK + (CHUNK >> 2)),
                ));
                sink.send(chunk).await.map_err(pg)?;
            }
        }
        row_base += batch.num_rows() as u64;
    }
    encode::trailer(&mut buf);
    sink.send(Bytes::from(buf)).await.map_err(pg)?;
    let copied = sink.as_mut().finish().await.map_err(pg)?;
    report.rows = row_base;
    if copied != row_base {
        return Err(ours(
            Error::internal(format!(
                "COPY stored {copied} rows, but {row_base} were sent"
            )),
            OP,
        ));
    }

    match &request.mode {
        WriteMode::Upsert(k) => {
            let key_list = k.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
            let updates: Vec<String> = columns
                .iter()
                .map(|(_, t)| &target[*t].name)
                .filter(|n| !k.contains(n))
                .map(|n| format!("{c} = EXCLUDED.{c}", c = ident(n)))
                .collect();
            let dedup = format!(
                "(SELECT DISTINCT ON ({key_list}) * FROM {STAGE} ORDER BY {key_list}, ctid DESC) s"
            );
            let sql = if has_unique {
                let action = if updates.is_empty() {
                    "DO NOTHING".to_owned()
                } else {
                    format!("DO UPDATE SET {}", updates.join(", "))
                };
                format!(
                    "INSERT INTO {rel} ({col_list}) SELECT {col_list} FROM {dedup} \
                     ON CONFLICT ({key_list}) {action}"
                )
            } else {
                let cond = k
                    .iter()
                    .map(|c| format!("t.{c} = s.{c}", c = ident(c)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let sets: Vec<String> = columns
                    .iter()
                    .map(|(_, t)| &target[*t].name)
                    .filter(|n| !k.contains(n))
                    .map(|n| format!("{c} = s.{c}", c = ident(n)))
                    .collect();
                let update = if sets.is_empty() {
                    String::new()
                } else {
                    format!(
                        "UPDATE {rel} t SET {} FROM {dedup} WHERE {cond}; ",
                        sets.join(", ")
                    )
                };
                let s_cols = columns
                    .iter()
                    .map(|(_, t)| format!("s.{}", ident(&target[*t].name)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "{update}INSERT INTO {rel} ({col_list}) SELECT {s_cols} FROM {dedup} \
                     WHERE NOT EXISTS (SELECT 1 FROM {rel} t WHERE {cond})"
                )
            };
            tx.batch_execute(&sql).await.map_err(pg)?;
        }
        WriteMode::Delete(k) => {
            let cond = k
                .iter()
                .map(|c| format!("t.{c} = s.{c}", c = ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let n = tx
                .execute(
                    &format!("DELETE FROM {rel} t USING {STAGE} s WHERE {cond}"),
                    &[],
                )
                .await
                .map_err(pg)?;
            report.rows_deleted = Some(n);
        }
        WriteMode::Append | WriteMode::Overwrite => {}
    }
    tx.commit().await.map_err(pg)?;
    if report.outputs.is_empty() {
        report.outputs.push(table);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
