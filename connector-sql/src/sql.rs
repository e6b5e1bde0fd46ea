//! SQL text generation shared by every SQL backend: identifier quoting per dialect, and
//! [`Expr`] filters rendered with bound parameters (values are never spliced into SQL text).

use connector_core::{CmpOp, Expr, Literal};

/// How a database spells identifiers and parameter placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `"ident"`, `$1`.
    Postgres,
    /// MySQL / MariaDB: `` `ident` ``, `?`.
    MySql,
    /// SQLite: `"ident"`, `?1`.
    Sqlite,
}

impl Dialect {
    /// Quote one identifier, doubling the quote character inside it.
    #[must_use]
    pub fn quote_ident(self, ident: &str) -> String {
        let q = match self {
            Self::Postgres | Self::Sqlite => '"',
            Self::MySql => '`',
        };
        let mut out = String::with_capacity(ident.len() + 2);
        out.push(q);
        for c in ident.chars() {
            if c == q {
                out.push(q);
            }
            out.push(c);
        }
        out.push(q);
        out
    }

    /// Quote a possibly schema-qualified name given as parts (`["schema", "table"]`).
    #[must_use]
    pub fn quote_path(self, parts: &[&str]) -> String {
        parts
            .iter()
            .map(|p| self.quote_ident(p))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The placeholder for the `n`-th (1-based) parameter.
    #[must_use]
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql => "?".to_owned(),
            Self::Sqlite => format!("?{n}"),
        }
    }
}

/// Split `schema.table` into parts. A part may be double-quoted to contain dots
/// (`"my.schema"."t"`); quotes inside quoted parts are doubled.
#[must_use]
pub fn split_qualified(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = name.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if cur.is_empty() => quoted = true,
            ('"', true) => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            }
            ('.', false) => parts.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// Render `expr` as a SQL boolean expression, pushing its literal values onto `params` in
/// placeholder order. `Literal::Null` in a comparison renders as `NULL` (never true), matching
/// [`connector_core::residual::evaluate`].
pub fn render_filter(expr: &Expr, dialect: Dialect, params: &mut Vec<Literal>) -> String {
    match expr {
        Expr::Compare { column, op, value } => {
            let col = dialect.quote_ident(column);
            if matches!(value, Literal::Null) {
                return "NULL".to_owned();
            }
            params.push(value.clone());
            format!(
                "{col} {} {}",
                op_sql(*op),
                dialect.placeholder(params.len())
            )
        }
        Expr::And(parts) if parts.is_empty() => "TRUE".to_owned(),
        Expr::Or(parts) if parts.is_empty() => "FALSE".to_owned(),
        Expr::And(parts) => join(parts, " AND ", dialect, params),
        Expr::Or(parts) => join(parts, " OR ", dialect, params),
        Expr::Not(inner) => format!("NOT ({})", render_filter(inner, dialect, params)),
        Expr::IsNull(c) => format!("{} IS NULL", dialect.quote_ident(c)),
        Expr::IsNotNull(c) => format!("{} IS NOT NULL", dialect.quote_ident(c)),
        Expr::In { column, values } => {
            let non_null: Vec<&Literal> = values
                .iter()
                .filter(|v| !matches!(v, Literal::Null))
                .collect();
            if non_null.is_empty() {
                return "FALSE".to_owned();
            }
            let col = dialect.quote_ident(column);
            let ph: Vec<String> = non_null
                .into_iter()
                .map(|v| {
                    params.push(v.clone());
                    dialect.placeholder(params.len())
                })
                .collect();
            format!("{col} IN ({})", ph.join(", "))
        }
    }
}

fn join(parts: &[Expr], sep: &str, dialect: Dialect, params: &mut Vec<Literal>) -> String {
    parts
        .iter()
        .map(|p| format!("({})", render_filter(p, dialect, params)))
        .collect::<Vec<_>>()
        .join(sep)
}

fn op_sql(op: CmpOp) -> &'static str {
    op.sql()
}

/// Whether a backend that stores `incoming` values in a column read back as `target` keeps them
/// without loss of meaning: same family (integers, floats, decimals, text, binary, dates,
/// timestamps, times), or integers into floats/decimals. Used to align incoming data with an
/// existing table before [`connector_core::drift::reconcile`], which wants equal types.
#[must_use]
pub fn write_compatible(
    target: &arrow::datatypes::DataType,
    incoming: &arrow::datatypes::DataType,
) -> bool {
    use arrow::datatypes::DataType as D;
    let int = |t: &D| t.is_integer();
    let text = |t: &D| matches!(t, D::Utf8 | D::LargeUtf8 | D::Utf8View);
    let bin = |t: &D| {
        matches!(
            t,
            D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)
        )
    };
    let dec = |t: &D| matches!(t, D::Decimal128(..) | D::Decimal256(..));
    match (target, incoming) {
        (a, b) if a == b => true,
        (a, b) if int(a) && int(b) => true,
        (a, b) if a.is_floating() && (b.is_floating() || int(b)) => true,
        (a, b) if dec(a) && (dec(b) || int(b)) => true,
        (a, b) if text(a) && text(b) => true,
        (a, b) if bin(a) && bin(b) => true,
        (D::Date32 | D::Date64, D::Date32 | D::Date64)
        | (D::Timestamp(..), D::Timestamp(..))
        | (
            D::Time64(_) | D::Time32(_) | D::Duration(_),
            D::Time64(_) | D::Time32(_) | D::Duration(_),
        ) => true,
        _ => false,
    }
}

/// `incoming` with each column that also exists in `target` (by name) retyped to the target's
/// type when [`write_compatible`]; other columns are left for the drift check to report.
#[must_use]
pub fn align_to_target(
    target: &arrow::datatypes::Schema,
    incoming: &arrow::datatypes::Schema,
) -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::Field;
    let fields: Vec<Field> = incoming
        .fields()
        .iter()
        .map(|f| match target.field_with_name(f.name()) {
            Ok(t)
                if t.data_type() != f.data_type()
                    && write_compatible(t.data_type(), f.data_type()) =>
            {
                Field::new(f.name(), t.data_type().clone(), f.is_nullable())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
}

/// Cast `batch` to `schema` (same column names and order), failing on values that do not fit
/// (no silent NULLs or truncation).
pub fn cast_batch(
    batch: &arrow::record_batch::RecordBatch,
    schema: &arrow::datatypes::SchemaRef,
) -> connector_core::Result<arrow::record_batch::RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let opts = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let cols = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                arrow::compute::cast_with_options(c, f.data_type(), &opts).map_err(|e| {
                    connector_core::Error::new(
                        connector_core::ErrorKind::SchemaMismatch,
                        format!(
                            "column {:?}: cannot convert {} to {}: {e}",
                            f.name(),
                            c.data_type(),
                            f.data_type()
                        ),
                    )
                    .with_location(
                        connector_core::Location::default().with_column(f.name().clone()),
                    )
                })
            }
        })
        .collect::<connector_core::Result<Vec<_>>>()?;
    let opts =
        arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(arrow::record_batch::RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &opts,
    )?)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
#[must_use]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01, or `None` for an invalid date.
#[must_use]
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d > dim[(m - 1) as usize] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Render a decimal stored as an unscaled integer with `scale` fractional digits, exactly.
#[must_use]
pub fn decimal_to_string(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = unscaled.to_string();
        if unscaled != 0 {
            s.extend(std::iter::repeat_n('0', usize::from(scale.unsigned_abs())));
        }
        return s;
    }
    let neg = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if neg { "-" } else { "" })
}

/// Parse a decimal text (`-12.340`, `1e3` is not accepted) into an unscaled integer with
/// exactly `scale` fractional digits. Extra non-zero fractional digits are an error (no rounding).
#[must_use]
pub fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let t = text.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale_u = usize::from(scale.max(0).unsigned_abs());
    if frac.len() > scale_u && frac[scale_u..].bytes().any(|b| b != b'0') {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes() {
        v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    let fb = frac.as_bytes();
    for i in 0..scale_u {
        let d = fb.get(i).map_or(0, |b| b - b'0');
        v = v.checked_mul(10)?.checked_add(i128::from(d))?;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quote_chars() {
        assert_eq!(Dialect::Postgres.quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(Dialect::MySql.quote_ident("a`b"), "`a``b`");
        assert_eq!(
            split_qualified(r#""my.schema"."t""x""#),
            vec!["my.schema".to_string(), "t\"x".to_string()]
        );
        assert_eq!(
            split_qualified("public.t"),
            vec!["public".to_string(), "t".to_string()]
        );
    }

    #[test]
    fn filters_bind_values() {
        let e = Expr::eq("name", "x'); DROP TABLE t; --")
            .and(Expr::is_in("id", [1, 2]))
            .or(Expr::IsNull("z".into()));
        let mut p = Vec::new();
        let sql = render_filter(&e, Dialect::Postgres, &mut p);
        assert_eq!(
            sql,
            r#"(("name" = $1) AND ("id" IN ($2, $3))) OR ("z" IS NULL)"#
        );
        assert_eq!(p.len(), 3);
        let mut p = Vec::new();
        assert_eq!(
            render_filter(&Expr::cmp("a", CmpOp::Gt, 1), Dialect::MySql, &mut p),
            "`a` > ?"
        );
    }

    #[test]
    fn civil_dates_and_decimals() {
        for d in [-719_468_i64, -1, 0, 59, 10_957, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), Some(d));
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 2, 30), None);
        assert_eq!(decimal_to_string(-1234, 2), "-12.34");
        assert_eq!(decimal_to_string(5, 3), "0.005");
        assert_eq!(parse_decimal("-12.340", 3), Some(-12340));
        assert_eq!(parse_decimal("0.005", 2), None);
        assert_eq!(parse_decimal("abc", 2), None);
    }
}
