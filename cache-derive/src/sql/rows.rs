//! Which rows one SQL string reads or writes, where the text says so: a read of one table
//! by `id = <placeholder>`, and writes whose rows are named by an `id = <placeholder>` (or,
//! for an `INSERT` of one row, the id it inserts).
//!
//! The rules are conservative: anything else (a join, a subquery in a read, an `OR`, an
//! upsert, an `UPDATE` that sets `id`, several rows inserted) says nothing about rows, and
//! the read or write then follows its whole table. The id column is the one named `id`.

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr, FromTable, ObjectName, Query, SetExpr, Statement,
    TableFactor, TableObject, TableWithJoins, Value, Visit, Visitor,
};
use sqlparser::dialect::Dialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::tables::{self, normalise, normalise_ident};

/// The rows one SQL string uses. Slots are 0-based indexes into the query's binds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Rows {
    /// The string is one read of one row of a table: the table, and the bind of the id.
    pub(crate) read: Option<(String, usize)>,
    /// Each table the string writes, with the bind of the id of the row a statement writes
    /// (`None`: a statement whose rows are unknown), and whether it inserts that row. A
    /// table appears once per statement.
    pub(crate) writes: Vec<(String, Option<usize>, bool)>,
}

/// The rows of `sql`, parsed as [`tables::analyze`] parses it; `None` when it does not
/// parse.
pub(crate) fn rows(sql: &str) -> Option<Rows> {
    for dialect in tables::dialects() {
        let Ok(statements) = Parser::parse_sql(dialect, sql) else {
            continue;
        };
        let (ordinals, mixed) = ordinal_placeholders(dialect, sql);
        // `?` beside `?NNN`: numbered as the driver does, which this does not follow.
        let slot = |expr: &Expr| {
            if mixed {
                None
            } else {
                slot_of(expr, &ordinals)
            }
        };
        let mut rows = Rows::default();
        if let [Statement::Query(query)] = &statements[..] {
            rows.read = row_read(query, &slot);
        }
        for statement in &statements {
            let row = row_write(statement, &slot);
            let insert = matches!(statement, Statement::Insert(_));
            for table in tables::sets_of(std::slice::from_ref(statement)).writes {
                let slot = row.as_ref().and_then(|(t, s)| (*t == table).then_some(*s));
                rows.writes.push((table, slot, insert));
            }
        }
        return Some(rows);
    }
    None
}

/// Where each bare `?` placeholder starts, in order (`?` is the n-th bind), and whether
/// bare and numbered placeholders are mixed.
fn ordinal_placeholders(dialect: &dyn Dialect, sql: &str) -> (Vec<Location>, bool) {
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize_with_location() else {
        return (Vec::new(), true);
    };
    let mut bare = Vec::new();
    let mut numbered = false;
    for t in tokens {
        if let Token::Placeholder(p) = &t.token {
            if p == "?" {
                bare.push(t.span.start);
            } else {
                numbered = true;
            }
        }
    }
    let mixed = numbered && !bare.is_empty();
    (bare, mixed)
}

/// The bind a placeholder (perhaps cast: `$1::bigint`) stands for.
fn slot_of(expr: &Expr, ordinals: &[Location]) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) if p == "?" => {
                let at = v.span.start;
                if at.line == 0 {
                    return None;
                }
                ordinals.iter().position(|o| *o == at)
            }
            Value::Placeholder(p) => {
                let n: usize = p.strip_prefix(['$', '?'])?.parse().ok()?;
                n.checked_sub(1)
            }
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => slot_of(expr, ordinals),
        _ => None,
    }
}

/// Whether `expr` is the `id` column of the table `name` (alias `alias`).
fn is_id(expr: &Expr, name: &ObjectName, alias: Option<&str>) -> bool {
    match expr {
        Expr::Identifier(ident) => normalise_ident(ident) == "id",
        Expr::CompoundIdentifier(parts) => match &parts[..] {
            [qualifier, column] => {
                let q = normalise_ident(qualifier);
                let table = normalise(name);
                let last = table.rsplit('.').next().unwrap_or(&table);
                normalise_ident(column) == "id" && (alias == Some(q.as_str()) || q == last)
            }
            _ => false,
        },
        Expr::Nested(inner) => is_id(inner, name, alias),
        _ => false,
    }
}

/// The bind of `id` in a top-level conjunct `id = <placeholder>` of `selection`.
fn id_slot(
    selection: &Expr,
    name: &ObjectName,
    alias: Option<&str>,
    slot: &dyn Fn(&Expr) -> Option<usize>,
) -> Option<usize> {
    match selection {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => id_slot(left, name, alias, slot).or_else(|| id_slot(right, name, alias, slot)),
        Expr::Nested(inner) => id_slot(inner, name, alias, slot),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            if is_id(left, name, alias) {
                slot(right)
            } else if is_id(right, name, alias) {
                slot(left)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The one plain table of `from`, with its alias: no join, no function, no subquery.
fn single_table(from: &[TableWithJoins]) -> Option<(&ObjectName, Option<String>)> {
    let [TableWithJoins { relation, joins }] = from else {
        return None;
    };
    if !joins.is_empty() {
        return None;
    }
    match relation {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => Some((name, alias.as_ref().map(|a| normalise_ident(&a.name)))),
        _ => None,
    }
}

/// Counts queries, subqueries included.
#[derive(Default)]
struct CountQueries(usize);

impl Visitor for CountQueries {
    type Break = ();

    fn pre_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
        self.0 += 1;
        std::ops::ControlFlow::Continue(())
    }
}

/// `SELECT … FROM t WHERE id = $n [AND …]`: one table, no join, no subquery, no CTE, no
/// set operation. Its result depends on the rows with that id only.
fn row_read(query: &Query, slot: &dyn Fn(&Expr) -> Option<usize>) -> Option<(String, usize)> {
    let mut count = CountQueries::default();
    let _ = query.visit(&mut count);
    if count.0 != 1 || query.with.is_some() {
        return None;
    }
    let SetExpr::Select(select) = &*query.body else {
        return None;
    };
    if select.into.is_some() {
        return None;
    }
    let (name, alias) = single_table(&select.from)?;
    let id = id_slot(select.selection.as_ref()?, name, alias.as_deref(), slot)?;
    Some((normalise(name), id))
}

/// The table a statement writes one known row of, and the bind of that row's id.
fn row_write(
    statement: &Statement,
    slot: &dyn Fn(&Expr) -> Option<usize>,
) -> Option<(String, usize)> {
    match statement {
        // Not `UPDATE OR REPLACE` (it deletes the rows it conflicts with), nor one that
        // moves a row to another id.
        Statement::Update(update) => {
            if update.from.is_some() || update.or.is_some() {
                return None;
            }
            let (name, alias) = single_table(std::slice::from_ref(&update.table))?;
            let sets_id = update.assignments.iter().any(|a| match &a.target {
                AssignmentTarget::ColumnName(column) => is_id_name(column),
                AssignmentTarget::Tuple(columns) => columns.iter().any(is_id_name),
            });
            if sets_id {
                return None;
            }
            let id = id_slot(update.selection.as_ref()?, name, alias.as_deref(), slot)?;
            Some((normalise(name), id))
        }
        Statement::Delete(delete) => {
            let from = match &delete.from {
                FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from,
            };
            if !delete.tables.is_empty() || delete.using.is_some() {
                return None;
            }
            let (name, alias) = single_table(from)?;
            let id = id_slot(delete.selection.as_ref()?, name, alias.as_deref(), slot)?;
            Some((normalise(name), id))
        }
        // One row, its id a placeholder. Not an upsert nor a REPLACE: they change rows
        // that conflict on any unique key, whatever their id.
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return None;
            };
            if insert.or.is_some()
                || insert.on.is_some()
                || insert.replace_into
                || !insert.assignments.is_empty()
            {
                return None;
            }
            let source = insert.source.as_ref()?;
            let SetExpr::Values(values) = &*source.body else {
                return None;
            };
            let [row] = &values.rows[..] else {
                return None;
            };
            let at = insert.columns.iter().position(|c| {
                let name = normalise(c).to_lowercase();
                name.rsplit('.').next() == Some("id")
            })?;
            if insert.overriding.is_some() {
                // PostgreSQL's `OVERRIDING USER VALUE` ignores the id given.
                return None;
            }
            Some((normalise(name), slot(row.get(at)?)?))
        }
        _ => None,
    }
}

/// Whether a column name (perhaps qualified) may be the id: `id` in any case, quoted or
/// not (SQLite and MySQL match column names without case), or one of SQLite's aliases of
/// an `INTEGER PRIMARY KEY`.
fn is_id_name(column: &ObjectName) -> bool {
    let name = normalise(column).to_lowercase();
    let last = name.rsplit('.').next().unwrap_or(&name);
    let last = last.trim_matches(|c| c == '"' || c == '`');
    matches!(last, "id" | "rowid" | "oid" | "_rowid_")
}

#[cfg(test)]
mod tests {
    use super::rows;

    fn read(sql: &str) -> Option<(String, usize)> {
        rows(sql).expect("parses").read
    }

    fn writes(sql: &str) -> Vec<(String, Option<usize>)> {
        let rows = rows(sql).expect("parses");
        rows.writes.into_iter().map(|(t, s, _)| (t, s)).collect()
    }

    fn r(table: &str, slot: usize) -> Option<(String, usize)> {
        Some((table.to_owned(), slot))
    }

    #[test]
    fn a_read_of_one_row_by_id() {
        assert_eq!(
            read("SELECT * FROM articles WHERE id = $1"),
            r("articles", 0)
        );
        assert_eq!(
            read("SELECT * FROM articles WHERE id = ?"),
            r("articles", 0)
        );
        assert_eq!(
            read("SELECT * FROM articles WHERE id = ?2"),
            r("articles", 1)
        );
        assert_eq!(
            read("SELECT a.title FROM articles a WHERE a.deleted = ? AND (a.id = ?)"),
            r("articles", 1)
        );
        assert_eq!(
            read("SELECT title FROM Articles WHERE $2 = articles.id AND author = $1 LIMIT 1"),
            r("articles", 1)
        );
        assert_eq!(
            read("SELECT * FROM articles WHERE id = $1::bigint"),
            r("articles", 0)
        );
        assert_eq!(
            read("SELECT count(*) FROM articles WHERE id = $1"),
            r("articles", 0)
        );
    }

    #[test]
    fn reads_that_may_include_other_rows_follow_the_table() {
        for sql in [
            "SELECT * FROM articles",
            "SELECT * FROM articles WHERE slug = $1",
            "SELECT * FROM articles WHERE id = $1 OR id = $2",
            "SELECT * FROM articles WHERE id > $1",
            "SELECT * FROM articles WHERE id = 7",
            "SELECT * FROM articles WHERE author_id = $1",
            "SELECT * FROM articles a JOIN users u ON u.id = a.author WHERE a.id = $1",
            "SELECT * FROM articles WHERE id = $1 AND n > (SELECT avg(n) FROM articles)",
            "SELECT *, (SELECT count(*) FROM articles) FROM articles WHERE id = $1",
            "WITH x AS (SELECT 1) SELECT * FROM articles WHERE id = $1",
            "SELECT * FROM articles WHERE id = $1 UNION SELECT * FROM articles WHERE id = $2",
            "SELECT * FROM articles WHERE users.id = $1",
            "SELECT * FROM articles WHERE id = :id",
            "SELECT * FROM (SELECT * FROM articles) t WHERE id = $1",
            "UPDATE articles SET n = 1 WHERE id = $1",
            "SELECT 1 FROM articles WHERE id = $1; SELECT 2 FROM articles WHERE id = $2",
        ] {
            assert_eq!(read(sql), None, "{sql}");
        }
    }

    #[test]
    fn writes_of_known_rows() {
        let one = |t: &str, s| vec![(t.to_owned(), Some(s))];
        assert_eq!(
            writes("UPDATE articles SET title = $1 WHERE id = $2"),
            one("articles", 1)
        );
        assert_eq!(
            writes("UPDATE articles SET title = ?, body = ? WHERE id = ? AND author = ?"),
            one("articles", 2)
        );
        assert_eq!(
            writes("DELETE FROM articles WHERE id = ?"),
            one("articles", 0)
        );
        assert_eq!(
            writes("INSERT INTO articles (title, id) VALUES ($1, $2)"),
            one("articles", 1)
        );
        assert_eq!(
            writes("INSERT INTO articles (title, id) VALUES (?, ?) RETURNING id"),
            one("articles", 1)
        );
    }

    #[test]
    fn writes_whose_rows_are_unknown_follow_the_table() {
        for sql in [
            "UPDATE articles SET title = $1 WHERE slug = $2",
            "UPDATE articles SET title = $1",
            "UPDATE articles SET id = $1 WHERE id = $2",
            "UPDATE articles SET (id, title) = ($1, $2) WHERE id = $3",
            "UPDATE articles SET \"ID\" = ? WHERE id = ?",
            "UPDATE articles SET rowid = ? WHERE id = ?",
            "UPDATE articles SET title = ?1 WHERE id = ?",
            "INSERT INTO articles (id, title) OVERRIDING USER VALUE VALUES ($1, $2)",
            "UPDATE articles SET n = 1 WHERE id = $1 OR id = $2",
            "UPDATE OR REPLACE articles SET slug = ? WHERE id = ?",
            "DELETE FROM articles WHERE id IN (1, 2)",
            "DELETE FROM articles",
            "INSERT INTO articles (title) VALUES ($1)",
            "INSERT INTO articles (id, title) VALUES ($1, $2), ($3, $4)",
            "INSERT INTO articles (id, title) VALUES ($1, $2) ON CONFLICT (slug) DO UPDATE SET title = $2",
            "INSERT OR REPLACE INTO articles (id, title) VALUES (?, ?)",
            "REPLACE INTO articles (id, title) VALUES (?, ?)",
            "INSERT INTO articles (id, title) SELECT id, title FROM drafts WHERE id = $1",
            "INSERT INTO articles (id, title) VALUES (7, $1)",
            "TRUNCATE articles",
        ] {
            let w = writes(sql);
            assert!(
                w.iter().any(|(t, _)| t == "articles") && w.iter().all(|(_, s)| s.is_none()),
                "{sql}: {w:?}"
            );
        }
    }

    #[test]
    fn every_statement_counts() {
        let w = writes(
            "UPDATE articles SET n = n + 1 WHERE id = $1; \
             INSERT INTO favorites (user_id, article_id) VALUES ($2, $1)",
        );
        assert_eq!(
            w,
            [
                ("articles".to_owned(), Some(0)),
                ("favorites".to_owned(), None)
            ]
        );
    }
}
