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
        parts.iter().map(|p| self.quote_ident(p)).collect::<Vec<_>>().join(".")
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
            format!("{col} {} {}", op_sql(*op), dialect.placeholder(params.len()))
        }
        Expr::And(parts) if parts.is_empty() => "TRUE".to_owned(),
        Expr::Or(parts) if parts.is_empty() => "FALSE".to_owned(),
        Expr::And(parts) => join(parts, " AND ", dialect, params),
        Expr::Or(parts) => join(parts, " OR ", dialect, params),
        Expr::Not(inner) => format!("NOT ({})", render_filter(inner, dialect, params)),
        Expr::IsNull(c) => format!("{} IS NULL", dialect.quote_ident(c)),
        Expr::IsNotNull(c) => format!("{} IS NOT NULL", dialect.quote_ident(c)),
        Expr::In { column, values } => {
            let non_null: Vec<&Literal> = values.iter().filter(|v| !matches!(v, Literal::Null)).collect();
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
    parts.iter().map(|p| format!("({})", render_filter(p, dialect, params))).collect::<Vec<_>>().join(sep)
}

fn op_sql(op: CmpOp) -> &'static str {
    op.sql()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quote_chars() {
        assert_eq!(Dialect::Postgres.quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(Dialect::MySql.quote_ident("a`b"), "`a``b`");
        assert_eq!(split_qualified(r#""my.schema"."t""x""#), vec!["my.schema".to_string(), "t\"x".to_string()]);
        assert_eq!(split_qualified("public.t"), vec!["public".to_string(), "t".to_string()]);
    }

    #[test]
    fn filters_bind_values() {
        let e = Expr::eq("name", "x'); DROP TABLE t; --").and(Expr::is_in("id", [1, 2])).or(Expr::IsNull("z".into()));
        let mut p = Vec::new();
        let sql = render_filter(&e, Dialect::Postgres, &mut p);
        assert_eq!(sql, r#"(("name" = $1) AND ("id" IN ($2, $3))) OR ("z" IS NULL)"#);
        assert_eq!(p.len(), 3);
        let mut p = Vec::new();
        assert_eq!(render_filter(&Expr::cmp("a", CmpOp::Gt, 1), Dialect::MySql, &mut p), "`a` > ?");
    }
}
