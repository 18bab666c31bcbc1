//! The tables one SQL string reads and writes, from its parse tree.
//!
//! Reads: every relation in FROM, JOIN, subqueries anywhere, CTE bodies, set operations,
//! LATERAL, the source of INSERT … SELECT, UPDATE … FROM, DELETE … USING, and the target of
//! an upsert (ON CONFLICT, ON DUPLICATE KEY, REPLACE, INSERT OR REPLACE). Writes: the
//! targets of INSERT, UPDATE, DELETE, MERGE, TRUNCATE and DDL, data-modifying CTEs
//! included. Not tables: CTE names (in their scope only), table functions, aliases.
//!
//! Names are normalised as the database does: an unquoted identifier folds to lower case,
//! a quoted one is kept, and a schema is kept when written (`public.users`).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    FromTable, Ident, ObjectName, ObjectNamePart, ObjectType, Query, Statement, TableFactor,
    TableObject, TableWithJoins, Visit, Visitor,
};
use sqlparser::dialect::{Dialect, GenericDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

/// What one SQL string reads and writes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TableSets {
    pub(crate) reads: BTreeSet<String>,
    pub(crate) writes: BTreeSet<String>,
    /// Statements whose tables cannot be told from the text (`CALL`, `EXECUTE`).
    pub(crate) opaque: Vec<String>,
}

/// Parses `sql` (one or several statements) as PostgreSQL, SQLite, MySQL, then generic SQL,
/// and returns the tables of the first dialect that parses it; the error is PostgreSQL's
/// when none does.
pub(crate) fn analyze(sql: &str) -> Result<TableSets, String> {
    let mut first_error = None;
    for dialect in dialects() {
        match Parser::parse_sql(dialect, sql) {
            Ok(statements) => {
                let sets = sets_of(&statements);
                if let Some(what) = sets.opaque.first() {
                    return Err(format!("{what} runs SQL this text does not show"));
                }
                return Ok(sets);
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_error.unwrap_or_default())
}

/// The dialects SQL is parsed as, in order: the first that parses it is taken.
pub(crate) fn dialects() -> [&'static dyn Dialect; 4] {
    [
        &PostgreSqlDialect {},
        &SQLiteDialect {},
        &MySqlDialect {},
        &GenericDialect {},
    ]
}

pub(crate) fn sets_of(statements: &[Statement]) -> TableSets {
    let mut walker = Walker::default();
    for statement in statements {
        let _ = statement.visit(&mut walker);
    }
    walker.sets
}

/// A `WITH` clause in scope: its CTE names, the queries defining them, and how many of them
/// are visible at the point being visited.
struct Frame {
    query: *const Query,
    names: Vec<String>,
    bodies: Vec<*const Query>,
    visible: usize,
    recursive: bool,
}

#[derive(Default)]
struct Walker {
    sets: TableSets,
    frames: Vec<Frame>,
    /// Relations that are not read: write targets, table functions (by address).
    not_read: Vec<*const ObjectName>,
}

impl Walker {
    fn is_cte(&self, name: &ObjectName) -> bool {
        let [ObjectNamePart::Identifier(ident)] = &name.0[..] else {
            return false;
        };
        let name = normalise_ident(ident);
        self.frames
            .iter()
            .any(|f| f.names[..f.visible].contains(&name))
    }

    /// A DML target is always a table: no database resolves it to a CTE.
    fn write(&mut self, name: &ObjectName, also_read: bool) {
        self.sets.writes.insert(normalise(name));
        if !also_read {
            self.not_read.push(name);
        }
    }

    fn write_factor(&mut self, factor: &TableFactor, also_read: bool) {
        if let TableFactor::Table { name, .. } = factor {
            self.write(name, also_read);
        }
    }

    /// The table an alias names in `from` (nested joins included), or the name itself.
    fn resolve<'a>(name: &'a ObjectName, from: &'a [TableWithJoins]) -> &'a ObjectName {
        let [ObjectNamePart::Identifier(ident)] = &name.0[..] else {
            return name;
        };
        fn find<'a>(factors: &'a [TableWithJoins], alias: &str) -> Option<&'a ObjectName> {
            for t in factors {
                let all = std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation));
                for factor in all {
                    match factor {
                        TableFactor::Table {
                            name,
                            alias: Some(a),
                            ..
                        } if normalise_ident(&a.name) == alias => return Some(name),
                        TableFactor::NestedJoin {
                            table_with_joins, ..
                        } => {
                            if let Some(found) = find(std::slice::from_ref(table_with_joins), alias)
                            {
                                return Some(found);
                            }
                        }
                        _ => {}
                    }
                }
            }
            None
        }
        find(from, &normalise_ident(ident)).unwrap_or(name)
    }

    /// Every table of a join tree (nested joins included): MySQL's multi-table UPDATE
    /// may set columns of any of them.
    fn write_join_tree(&mut self, tree: &TableWithJoins) {
        let all = std::iter::once(&tree.relation).chain(tree.joins.iter().map(|j| &j.relation));
        for (i, factor) in all.enumerate() {
            match factor {
                TableFactor::NestedJoin {
                    table_with_joins, ..
                } => self.write_join_tree(table_with_joins),
                other => self.write_factor(other, i > 0),
            }
        }
    }
}

impl Walker {
    fn set_expr_tables(&mut self, body: &sqlparser::ast::SetExpr) {
        use sqlparser::ast::SetExpr;
        match body {
            SetExpr::Table(table) => {
                if let Some(name) = &table.table_name {
                    let mut parts: Vec<Ident> = table.schema_name.iter().cloned().collect();
                    parts.push(name.clone());
                    let object = ObjectName::from(parts);
                    if !self.is_cte(&object) {
                        self.sets.reads.insert(normalise(&object));
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr_tables(left);
                self.set_expr_tables(right);
            }
            _ => {}
        }
    }
}

impl Visitor for Walker {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        // The body of CTE i sees the CTEs before it (and itself, if recursive).
        if let Some(frame) = self.frames.last_mut()
            && let Some(i) = frame.bodies.iter().position(|b| std::ptr::eq(*b, query))
        {
            frame.visible = if frame.recursive { i + 1 } else { i };
        }
        // `TABLE users`, alone or in a set operation: a read the visitor does not show.
        self.set_expr_tables(&query.body);
        if let Some(with) = &query.with {
            self.frames.push(Frame {
                query,
                names: with
                    .cte_tables
                    .iter()
                    .map(|cte| normalise_ident(&cte.alias.name))
                    .collect(),
                bodies: with
                    .cte_tables
                    .iter()
                    .map(|cte| &*cte.query as *const Query)
                    .collect(),
                visible: 0,
                recursive: with.recursive,
            });
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &sqlparser::ast::Select) -> ControlFlow<()> {
        // SELECT ... INTO new_table
        if let Some(into) = &select.into {
            for target in &into.targets {
                match target {
                    sqlparser::ast::Expr::Identifier(ident) => {
                        self.sets.writes.insert(normalise_ident(ident));
                    }
                    sqlparser::ast::Expr::CompoundIdentifier(parts) => {
                        let name = parts.iter().map(normalise_ident).collect::<Vec<_>>();
                        self.sets.writes.insert(name.join("."));
                    }
                    _ => self.sets.opaque.push("SELECT ... INTO".to_owned()),
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self
            .frames
            .last()
            .is_some_and(|f| std::ptr::eq(f.query, query))
        {
            self.frames.pop();
        }
        // After CTE i, what follows (later CTEs, the body) sees CTEs 0..=i.
        if let Some(frame) = self.frames.last_mut()
            && let Some(i) = frame.bodies.iter().position(|b| std::ptr::eq(*b, query))
        {
            frame.visible = i + 1;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        // `generate_series(1, 3)`, `unnest(...)` as a relation: a function, not a table.
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = factor
        {
            self.not_read.push(name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<()> {
        if !self.not_read.iter().any(|n| std::ptr::eq(*n, name)) && !self.is_cte(name) {
            self.sets.reads.insert(normalise(name));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        match statement {
            Statement::Insert(insert) => {
                if let TableObject::TableName(name) = &insert.table {
                    // An upsert reads the rows it may conflict with.
                    let upsert = insert.on.is_some() || insert.replace_into || insert.or.is_some();
                    self.write(name, upsert);
                }
            }
            Statement::Update(update) => self.write_join_tree(&update.table),
            Statement::Delete(delete) => {
                let from = match &delete.from {
                    FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from,
                };
                if delete.tables.is_empty() {
                    for table in from {
                        match (&table.relation, &delete.using) {
                            // MySQL: `DELETE FROM a, b USING users a JOIN posts b ...`.
                            (TableFactor::Table { name, .. }, Some(using)) => {
                                let target = Walker::resolve(name, using);
                                self.sets.writes.insert(normalise(target));
                                self.not_read.push(name);
                            }
                            (relation, _) => self.write_factor(relation, false),
                        }
                    }
                } else {
                    // MySQL: `DELETE a, b FROM users a JOIN posts b ...`, and
                    // `DELETE FROM a, b USING users a JOIN posts b ...`.
                    let mut scope = from.clone();
                    scope.extend(delete.using.iter().flatten().cloned());
                    for name in &delete.tables {
                        let table = Walker::resolve(name, &scope);
                        self.sets.writes.insert(normalise(table));
                        self.not_read.push(name);
                    }
                }
            }
            Statement::Merge(merge) => self.write_factor(&merge.table, false),
            Statement::Truncate(truncate) => {
                for target in &truncate.table_names {
                    self.write(&target.name, false);
                }
            }
            Statement::CreateTable(create) => self.write(&create.name, false),
            // COPY t FROM ... writes t (COPY t TO ... reads it, as a relation).
            Statement::Copy {
                source: sqlparser::ast::CopySource::Table { table_name, .. },
                to: false,
                ..
            } => self.write(table_name, false),
            Statement::Call(_) => self.sets.opaque.push("CALL".to_owned()),
            Statement::Execute { .. } => self.sets.opaque.push("EXECUTE".to_owned()),
            Statement::RefreshMaterializedView(_) => self
                .sets
                .opaque
                .push("REFRESH MATERIALIZED VIEW".to_owned()),
            Statement::AlterTable(alter) => self.write(&alter.name, false),
            Statement::CreateIndex(index) => self.write(&index.table_name, true),
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => {
                for name in names {
                    self.write(name, false);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// `a.b` with each part normalised.
pub(crate) fn normalise(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => normalise_ident(ident),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Unquoted identifiers fold to lower case; quoted ones are kept.
pub(crate) fn normalise_ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(sql: &str) -> (Vec<String>, Vec<String>) {
        let sets = analyze(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        (
            sets.reads.into_iter().collect(),
            sets.writes.into_iter().collect(),
        )
    }

    /// The labelled corpus (`tests/sql_corpus.txt`): 349 statements from public SQLx
    /// projects and 106 hard cases, each with its read and write sets. No statement may be
    /// read wrong (a missed table serves stale data); a statement the parser rejects is a
    /// compile error asking for the tables, so a few are allowed, and printed.
    #[test]
    fn the_corpus_is_read_as_labelled() {
        let corpus = include_str!("../../tests/sql_corpus.txt");
        let (mut checked, mut unparsed) = (0, Vec::new());
        let mut wrong = Vec::new();
        let started = std::time::Instant::now();
        for case in corpus.split("\n---\n") {
            let mut sql = String::new();
            let (mut reads, mut writes) = (None, None);
            for line in case.lines() {
                if let Some(r) = line.strip_prefix("-- reads:") {
                    reads = Some(list(r));
                } else if let Some(w) = line.strip_prefix("-- writes:") {
                    writes = Some(list(w));
                } else if !line.starts_with("-- source:") {
                    sql.push_str(line);
                    sql.push('\n');
                }
            }
            let (Some(reads), Some(writes)) = (reads, writes) else {
                continue;
            };
            checked += 1;
            match analyze(&sql) {
                Ok(found) => {
                    let got = (
                        found.reads.into_iter().collect::<Vec<_>>(),
                        found.writes.into_iter().collect::<Vec<_>>(),
                    );
                    if got != (reads.clone(), writes.clone()) {
                        wrong.push(format!(
                            "{}\n  expected reads {reads:?} writes {writes:?}\n  got {got:?}",
                            sql.trim()
                        ));
                    }
                }
                Err(e) => unparsed.push(format!("{}\n  does not parse: {e}", sql.trim())),
            }
        }
        println!(
            "{checked} statements in {:?}: {} read exactly as labelled, {} read wrong, {} not \
             parsed:\n{}",
            started.elapsed(),
            checked - wrong.len() - unparsed.len(),
            wrong.len(),
            unparsed.len(),
            unparsed.join("\n")
        );
        assert!(
            checked >= 300,
            "the corpus has {checked} labelled statements"
        );
        assert!(
            wrong.is_empty(),
            "{} of {checked} read wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert!(
            unparsed.len() <= 3,
            "{} of {checked} not parsed",
            unparsed.len()
        );
    }

    fn list(s: &str) -> Vec<String> {
        let mut v: Vec<String> = s
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        v.sort();
        v
    }

    /// Cases a review found read wrong, each a missed table before its fix.
    #[test]
    fn writes_and_reads_the_visitor_does_not_show() {
        let s = |v: &[&str]| v.iter().map(|t| (*t).to_owned()).collect::<Vec<String>>();
        // A DML target is a table even when a CTE has its name.
        assert_eq!(
            sets(
                "WITH users AS (SELECT id FROM banned) DELETE FROM users WHERE id IN (SELECT id FROM users)"
            ),
            (s(&["banned"]), s(&["users"]))
        );
        // `TABLE t` is a read, alone and in a set operation.
        assert_eq!(
            sets("SELECT * FROM posts WHERE uid IN (TABLE banned)"),
            (s(&["banned", "posts"]), s(&[]))
        );
        assert_eq!(
            sets("SELECT id FROM a UNION TABLE b"),
            (s(&["a", "b"]), s(&[]))
        );
        // SELECT INTO and COPY FROM write.
        assert_eq!(
            sets("SELECT * INTO archive FROM posts"),
            (s(&["posts"]), s(&["archive"]))
        );
        assert_eq!(sets("COPY users FROM STDIN"), (s(&[]), s(&["users"])));
        // MySQL aliases, in USING and in nested joins.
        assert_eq!(
            sets("DELETE FROM a1, a2 USING t1 AS a1 JOIN t2 AS a2 ON a1.id = a2.id"),
            (s(&["t1", "t2"]), s(&["t1", "t2"]))
        );
        // A procedure runs SQL the text does not show.
        assert!(analyze("CALL archive_old_posts()").is_err());
    }

    #[test]
    fn a_cte_hides_a_table_only_in_its_own_scope() {
        assert_eq!(
            sets("WITH users AS (SELECT * FROM users WHERE active) SELECT * FROM users"),
            (vec!["users".into()], vec![])
        );
        assert_eq!(
            sets("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b JOIN posts ON true"),
            (vec!["posts".into()], vec![])
        );
        assert_eq!(
            sets("SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) x JOIN t ON true"),
            (vec!["t".into()], vec![]),
            "outside its WITH, `t` is the table"
        );
    }
}
