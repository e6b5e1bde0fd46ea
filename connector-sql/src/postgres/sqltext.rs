//! SQL text for `COPY (SELECT …)`: filters with values rendered as typed literals.
//!
//! `COPY` takes no bind parameters, so filter values are written into the statement. This is the
//! only place that happens, and every value goes through [`literal`]:
//! - strings: `'…'` with `'` doubled when the string has no backslash; otherwise
//!   dollar-quoted (`$q$…$q$` with a tag that does not occur in the string). Both forms mean the
//!   same text whatever `standard_conforming_strings` is, and `E'…'` is never produced. A NUL
//!   character (which PostgreSQL text cannot hold) is an error.
//! - integers as digits, floats as `'…'::float8` (so `NaN`/`Infinity` work), booleans as
//!   `TRUE`/`FALSE`;
//! - dates as `DATE 'YYYY-MM-DD[ BC]'`, instants as `TIMESTAMP '…'` or `TIMESTAMPTZ '…+00'`
//!   following the column's type (±infinity for the `i64` extremes).
//!
//! Identifiers are always quoted with [`crate::sql::Dialect::quote_ident`].

use std::fmt::Write as _;

use connector_core::{Error, ErrorKind, Expr, Literal};

use crate::sql::Dialect;

/// Quote an identifier.
pub(crate) fn ident(s: &str) -> String {
    Dialect::Postgres.quote_ident(s)
}

/// A string literal that means `s` under any `standard_conforming_strings` setting.
pub(crate) fn string_literal(s: &str) -> Result<String, Error> {
    if s.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a string value contains a NUL character, which PostgreSQL text cannot hold",
        ));
    }
    if !s.contains('\\') {
        return Ok(format!("'{}'", s.replace('\'', "''")));
    }
    let mut n = 0usize;
    loop {
        let tag = if n == 0 {
            "$q$".to_owned()
        } else {
            format!("$q{n}$")
        };
        if !s.contains(&tag) && !s.ends_with(&tag[..tag.len() - 1]) {
            return Ok(format!("{tag}{s}{tag}"));
        }
        n += 1;
    }
}

/// Convert days since 1970-01-01 to a proleptic Gregorian (year, month, day), astronomical years.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn date_text(days: i64) -> (String, bool) {
    let (y, m, d) = civil_from_days(days);
    if y <= 0 {
        (format!("{:04}-{m:02}-{d:02}", 1 - y), true)
    } else {
        (format!("{y:04}-{m:02}-{d:02}"), false)
    }
}

/// `DATE '…'` for days since the Unix epoch.
pub(crate) fn date_literal(days: i32) -> String {
    match days {
        i32::MAX => "DATE 'infinity'".into(),
        i32::MIN => "DATE '-infinity'".into(),
        d => {
            let (t, bc) = date_text(i64::from(d));
            format!("DATE '{t}{}'", if bc { " BC" } else { "" })
        }
    }
}

/// `TIMESTAMP '…'` (or `TIMESTAMPTZ '…+00'` when `tz`) for microseconds since the Unix epoch.
pub(crate) fn timestamp_literal(micros: i64, tz: bool) -> String {
    let kw = if tz { "TIMESTAMPTZ" } else { "TIMESTAMP" };
    match micros {
        i64::MAX => format!("{kw} 'infinity'"),
        i64::MIN => format!("{kw} '-infinity'"),
        t => {
            let days = t.div_euclid(86_400_000_000);
            let rem = t.rem_euclid(86_400_000_000);
            let (d, bc) = date_text(days);
            let secs = rem / 1_000_000;
            let us = rem % 1_000_000;
            let mut s = format!(
                "{kw} '{d} {:02}:{:02}:{:02}.{us:06}",
                secs / 3600,
                (secs / 60) % 60,
                secs % 60
            );
            if tz {
                s.push_str("+00");
            }
            if bc {
                s.push_str(" BC");
            }
            s.push('\'');
            s
        }
    }
}

/// Render a literal for comparison with `column`; `is_tz(column)` says whether it is timestamptz.
pub(crate) fn literal(v: &Literal, tz: bool) -> Result<String, Error> {
    Ok(match v {
        Literal::Null => "NULL".into(),
        Literal::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Literal::Int(i) => {
            if *i < 0 {
                format!("({i})")
            } else {
                i.to_string()
            }
        }
        Literal::Float(f) => {
            if f.is_nan() {
                "'NaN'::float8".into()
            } else if f.is_infinite() {
                if *f > 0.0 {
                    "'Infinity'::float8"
                } else {
                    "'-Infinity'::float8"
                }
                .into()
            } else {
                // `{:?}` prints the shortest text that reads back as the same f64.
                format!("'{f:?}'::float8")
            }
        }
        Literal::String(s) => string_literal(s)?,
        Literal::Date(d) => date_literal(*d),
        Literal::TimestampMicros(t) => timestamp_literal(*t, tz),
    })
}

/// Render a filter with inline literals. `is_tz(column)` tells whether a column is timestamptz.
pub(crate) fn render_filter(expr: &Expr, is_tz: &dyn Fn(&str) -> bool) -> Result<String, Error> {
    Ok(match expr {
        Expr::Compare { column, op, value } => {
            if matches!(value, Literal::Null) {
                return Ok("NULL".into());
            }
            format!(
                "{} {} {}",
                ident(column),
                op.sql(),
                literal(value, is_tz(column))?
            )
        }
        Expr::And(parts) if parts.is_empty() => "TRUE".into(),
        Expr::Or(parts) if parts.is_empty() => "FALSE".into(),
        Expr::And(parts) | Expr::Or(parts) => {
            let sep = if matches!(expr, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let mut out = String::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                let _ = write!(out, "({})", render_filter(p, is_tz)?);
            }
            out
        }
        Expr::Not(inner) => format!("NOT ({})", render_filter(inner, is_tz)?),
        Expr::IsNull(c) => format!("{} IS NULL", ident(c)),
        Expr::IsNotNull(c) => format!("{} IS NOT NULL", ident(c)),
        Expr::In { column, values } => {
            let vals: Vec<String> = values
                .iter()
                .filter(|v| !matches!(v, Literal::Null))
                .map(|v| literal(v, is_tz(column)))
                .collect::<Result<_, _>>()?;
            if vals.is_empty() {
                return Ok("FALSE".into());
            }
            format!("{} IN ({})", ident(column), vals.join(", "))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::CmpOp;

    #[test]
    fn strings_cannot_escape() {
        assert_eq!(string_literal("it's").unwrap(), "'it''s'");
        assert_eq!(
            string_literal(r"a\'; DROP TABLE t; --").unwrap(),
            r"$q$a\'; DROP TABLE t; --$q$"
        );
        assert_eq!(string_literal(r"\$q$x").unwrap(), r"$q1$\$q$x$q1$");
        // a string ending in "$q" must not merge with the closing tag
        assert_eq!(string_literal(r"\$q").unwrap(), r"$q1$\$q$q1$");
        assert!(string_literal("a\0b").is_err());
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(date_literal(0), "DATE '1970-01-01'");
        assert_eq!(date_literal(-719_528), "DATE '0001-01-01 BC'");
        assert_eq!(date_literal(2_932_897), "DATE '10000-01-01'");
        assert_eq!(date_literal(i32::MAX), "DATE 'infinity'");
        assert_eq!(
            timestamp_literal(1_500_000, true),
            "TIMESTAMPTZ '1970-01-01 00:00:01.500000+00'"
        );
        assert_eq!(
            timestamp_literal(-1, false),
            "TIMESTAMP '1969-12-31 23:59:59.999999'"
        );
    }

    #[test]
    fn filters_render_typed_literals() {
        let e = Expr::cmp("a\"b", CmpOp::GtEq, -5)
            .and(Expr::is_in("s", ["x", "y'z"]))
            .and(Expr::cmp("f", CmpOp::Lt, f64::NAN))
            .and(Expr::eq("n", Literal::Null));
        let s = render_filter(&e, &|_| false).unwrap();
        assert_eq!(
            s,
            r#"("a""b" >= (-5)) AND ("s" IN ('x', 'y''z')) AND ("f" < 'NaN'::float8) AND (NULL)"#
        );
    }
}
