//! Hive-style partitions: `year=2024/month=01/part-0.parquet` gives the columns `year` and
//! `month`. A column is `Int64` when every value in the dataset parses as an integer, else
//! `Utf8`; `__HIVE_DEFAULT_PARTITION__` is NULL. Values are percent-decoded.
//!
//! A filter on partition columns prunes files before any of their bytes is read: a file is
//! skipped when the filter is certainly false for its partition values (SQL three-valued logic;
//! a condition on any other column counts as "unknown" and keeps the file). [`crate::FileSource`]
//! uses this with [`crate::FileOptions::hive_partitioning`], and [`crate::FileSink`] writes
//! partition directories with [`partition_dir`] for [`crate::FileOptions::partition_by`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use connector_core::{CmpOp, Error, Expr, Literal, Result};

/// The value written for a NULL partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The `key=value` pairs of the directory part of `relative_key`, in path order.
#[must_use]
pub fn parse_partitions(relative_key: &str) -> Vec<(String, String)> {
    let mut segs: Vec<&str> = relative_key.split('/').collect();
    segs.pop(); // the file name
    segs.into_iter()
        .filter_map(|s| s.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encode what cannot stand in a path segment (`/`, `=`, `%`, control characters, …).
#[must_use]
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b' ' | b':') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One partition value, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionValue {
    /// NULL (`__HIVE_DEFAULT_PARTITION__`).
    Null,
    /// An integer column's value.
    Int(i64),
    /// A string column's value.
    Str(String),
}

/// The partition columns of a dataset (each file's values come from [`HiveColumns::values`]).
#[derive(Debug, Clone, Default)]
pub struct HiveColumns {
    /// The columns, in path order, typed by inference.
    pub fields: Vec<Field>,
}

impl HiveColumns {
    /// Infer the columns from every file's path relative to the dataset. Paths that disagree on
    /// the column names (or their order) are an error naming both.
    pub fn infer<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut names: Option<(Vec<String>, String)> = None;
        let mut all_int: BTreeMap<String, bool> = BTreeMap::new();
        for key in keys {
            let parts = parse_partitions(key);
            let these: Vec<String> = parts.iter().map(|(k, _)| k.clone()).collect();
            match &names {
                None => names = Some((these, key.to_owned())),
                Some((n, first)) if *n != these => {
                    return Err(Error::invalid_input(
                        format!(
                            "files disagree on hive partition columns: {first} has {n:?}, {key} has {these:?}"
                        ),
                        connector_core::Location::file(key),
                    ));
                }
                Some(_) => {}
            }
            for (k, v) in parts {
                let int = v == NULL_PARTITION || v.parse::<i64>().is_ok();
                all_int.entry(k).and_modify(|b| *b &= int).or_insert(int);
            }
        }
        let fields = names
            .map(|(n, _)| n)
            .unwrap_or_default()
            .into_iter()
            .map(|n| {
                let dt = if all_int.get(&n).copied().unwrap_or(false) {
                    DataType::Int64
                } else {
                    DataType::Utf8
                };
                Field::new(n, dt, true)
            })
            .collect();
        Ok(Self { fields })
    }

    /// True when there are no partition columns.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether `name` is a partition column.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name() == name)
    }

    /// The typed values of one file's path relative to the dataset.
    #[must_use]
    pub fn values(&self, relative_key: &str) -> Vec<PartitionValue> {
        let parts: BTreeMap<String, String> = parse_partitions(relative_key).into_iter().collect();
        self.fields
            .iter()
            .map(|f| match parts.get(f.name()) {
                None => PartitionValue::Null,
                Some(v) if v == NULL_PARTITION => PartitionValue::Null,
                Some(v) => match f.data_type() {
                    DataType::Int64 => v
                        .parse()
                        .map_or_else(|_| PartitionValue::Str(v.clone()), PartitionValue::Int),
                    _ => PartitionValue::Str(v.clone()),
                },
            })
            .collect()
    }

    /// `file_schema` with the partition columns appended (a file column of the same name wins:
    /// the file's data is then used, as Spark and pyarrow do).
    #[must_use]
    pub fn extend_schema(&self, file_schema: &SchemaRef) -> SchemaRef {
        if self.is_empty() {
            return file_schema.clone();
        }
        let mut fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for f in &self.fields {
            if file_schema.field_with_name(f.name()).is_err() {
                fields.push(f.clone());
            }
        }
        Arc::new(Schema::new_with_metadata(
            fields,
            file_schema.metadata().clone(),
        ))
    }

    /// Append the partition columns (constant per file) to a batch decoded from the file.
    pub fn extend_batch(
        &self,
        batch: &RecordBatch,
        values: &[PartitionValue],
        out_schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        if self.is_empty() {
            return Ok(batch.clone());
        }
        let n = batch.num_rows();
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        for (f, v) in self.fields.iter().zip(values) {
            if batch.schema().field_with_name(f.name()).is_ok() {
                continue;
            }
            let a: ArrayRef = match (f.data_type(), v) {
                (_, PartitionValue::Null) => new_null_array(f.data_type(), n),
                (DataType::Int64, PartitionValue::Int(i)) => {
                    Arc::new(Int64Array::from_value(*i, n))
                }
                (_, PartitionValue::Int(i)) => Arc::new(StringArray::from_iter_values(
                    std::iter::repeat_n(i.to_string(), n),
                )),
                (_, PartitionValue::Str(s)) => Arc::new(StringArray::from_iter_values(
                    std::iter::repeat_n(s.as_str(), n),
                )),
            };
            cols.push(a);
        }
        Ok(RecordBatch::try_new(out_schema.clone(), cols)?)
    }

    /// Whether a file with `values` may hold rows matching `filter`: false only when the
    /// filter is certainly not true (false or NULL) for them.
    #[must_use]
    pub fn may_match(&self, filter: &Expr, values: &[PartitionValue]) -> bool {
        !matches!(self.eval(filter, values), Tri::False | Tri::Null)
    }

    fn value_of(&self, column: &str, values: &[PartitionValue]) -> Option<PartitionValue> {
        self.fields
            .iter()
            .position(|f| f.name() == column)
            .and_then(|i| values.get(i).cloned())
    }

    fn eval(&self, e: &Expr, values: &[PartitionValue]) -> Tri {
        match e {
            Expr::Compare { column, op, value } => match self.value_of(column, values) {
                Some(v) => compare(&v, *op, value),
                None => Tri::Unknown,
            },
            Expr::In { column, values: c } => match self.value_of(column, values) {
                Some(v) => Tri::any(c.iter().map(|lit| compare(&v, CmpOp::Eq, lit))),
                None => Tri::Unknown,
            },
            Expr::IsNull(c) => match self.value_of(c, values) {
                Some(v) => Tri::from(v == PartitionValue::Null),
                None => Tri::Unknown,
            },
            Expr::IsNotNull(c) => match self.value_of(c, values) {
                Some(v) => Tri::from(v != PartitionValue::Null),
                None => Tri::Unknown,
            },
            Expr::Not(x) => self.eval(x, values).not(),
            Expr::And(xs) => Tri::all(xs.iter().map(|x| self.eval(x, values))),
            Expr::Or(xs) => Tri::any(xs.iter().map(|x| self.eval(x, values))),
        }
    }
}

/// SQL truth values plus "depends on columns that are not partition columns".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Null,
    Unknown,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

impl Tri {
    fn not(self) -> Self {
        match self {
            Self::True => Self::False,
            Self::False => Self::True,
            other => other,
        }
    }

    /// AND: false wins, then unknown, then NULL.
    fn all(items: impl Iterator<Item = Tri>) -> Self {
        let mut out = Self::True;
        for t in items {
            match (t, out) {
                (Self::False, _) => return Self::False,
                (Self::Unknown, _) | (Self::Null, Self::Unknown) => out = Self::Unknown,
                (Self::Null, _) => out = Self::Null,
                (Self::True, _) => {}
            }
        }
        out
    }

    /// OR: true wins, then unknown, then NULL.
    fn any(items: impl Iterator<Item = Tri>) -> Self {
        let mut out = Self::False;
        for t in items {
            match (t, out) {
                (Self::True, _) => return Self::True,
                (Self::Unknown, _) | (Self::Null, Self::Unknown) => out = Self::Unknown,
                (Self::Null, _) => out = Self::Null,
                (Self::False, _) => {}
            }
        }
        out
    }
}

fn compare(v: &PartitionValue, op: CmpOp, lit: &Literal) -> Tri {
    use std::cmp::Ordering;
    let ord: Ordering = match (v, lit) {
        (PartitionValue::Null, _) | (_, Literal::Null) => return Tri::Null,
        (PartitionValue::Int(a), Literal::Int(b)) => a.cmp(b),
        (PartitionValue::Int(a), Literal::Float(b)) => match (*a as f64).partial_cmp(b) {
            Some(o) => o,
            None => return Tri::Unknown,
        },
        (PartitionValue::Str(a), Literal::String(b)) => a.as_str().cmp(b.as_str()),
        // Other combinations (casts) are evaluated on the rows after the read.
        _ => return Tri::Unknown,
    };
    Tri::from(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::NotEq => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::LtEq => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::GtEq => ord != Ordering::Less,
    })
}

/// The partition directory of one row's values: `year=2024/month=1`.
#[must_use]
pub fn partition_dir(columns: &[String], values: &[Option<String>]) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| {
            let v = v
                .as_deref()
                .map_or_else(|| NULL_PARTITION.to_owned(), percent_encode);
            format!("{}={v}", percent_encode(c))
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_infer() {
        let keys = [
            "year=2024/month=01/a.parquet",
            "year=2024/month=02/b.parquet",
            "year=2023/month=x%2Fy/c.parquet",
        ];
        assert_eq!(
            parse_partitions(keys[2]),
            vec![
                ("year".to_owned(), "2023".to_owned()),
                ("month".to_owned(), "x/y".to_owned())
            ]
        );
        let h = HiveColumns::infer(keys).unwrap();
        assert_eq!(h.fields[0].data_type(), &DataType::Int64);
        assert_eq!(h.fields[1].data_type(), &DataType::Utf8);
        assert_eq!(
            h.values(keys[0]),
            vec![PartitionValue::Int(2024), PartitionValue::Str("01".into())]
        );
        let e = HiveColumns::infer(["a=1/x", "b=1/y"]).unwrap_err();
        assert!(e.to_string().contains("a=1/x"), "{e}");
        assert!(HiveColumns::infer(["plain/x.csv"]).unwrap().is_empty());
    }

    #[test]
    fn pruning_is_three_valued() {
        let h = HiveColumns::infer([
            "year=2024/a",
            "year=2023/b",
            "year=__HIVE_DEFAULT_PARTITION__/c",
        ])
        .unwrap();
        let v24 = h.values("year=2024/a");
        let vnull = h.values("year=__HIVE_DEFAULT_PARTITION__/c");
        assert!(h.may_match(&Expr::eq("year", 2024), &v24));
        assert!(!h.may_match(&Expr::eq("year", 2023), &v24));
        assert!(!h.may_match(&Expr::cmp("year", CmpOp::Gt, 2024), &v24));
        assert!(h.may_match(&Expr::eq("other", 1), &v24));
        assert!(!h.may_match(&Expr::eq("year", 2023).and(Expr::eq("other", 1)), &v24));
        assert!(h.may_match(&Expr::eq("year", 2023).or(Expr::eq("other", 1)), &v24));
        assert!(!h.may_match(&Expr::is_in("year", [2020, 2021]), &v24));
        assert!(!h.may_match(&Expr::eq("year", 2024), &vnull));
        assert!(h.may_match(&Expr::IsNull("year".into()), &vnull));
        assert!(!h.may_match(&Expr::eq("year", 2024).not(), &v24));
        assert!(!h.may_match(&Expr::eq("year", 2024).not(), &vnull));
        // NULL AND unknown may turn true under NOT: keep.
        assert!(h.may_match(&Expr::eq("year", 1).and(Expr::eq("x", 1)).not(), &vnull));
    }

    #[test]
    fn dir_roundtrip() {
        let d = partition_dir(
            &["year".into(), "city".into()],
            &[Some("2024".into()), Some("a/b=c".into())],
        );
        assert_eq!(d, "year=2024/city=a%2Fb%3Dc");
        let back = parse_partitions(&format!("{d}/f.parquet"));
        assert_eq!(back[1].1, "a/b=c");
        assert_eq!(
            partition_dir(&["y".into()], &[None]),
            "y=__HIVE_DEFAULT_PARTITION__"
        );
    }
}
