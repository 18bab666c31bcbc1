//! The SQL in a function body: where it is, and which tables it reads and writes, so that
//! `#[cached]` and `#[invalidates]` can check (or infer) their tables (feature `sql`).

pub(crate) mod find;
#[cfg(feature = "sql")]
pub(crate) mod rows;
#[cfg(feature = "sql")]
pub(crate) mod tables;

use std::collections::BTreeMap;

use proc_macro2::Span;
use syn::LitStr;

use crate::ctxt::Ctxt;

/// The tables a body's SQL reads and writes, each with the span of the first SQL literal
/// naming it, and what could not be read.
#[derive(Default)]
pub(crate) struct Analysis {
    pub(crate) reads: BTreeMap<String, Span>,
    pub(crate) writes: BTreeMap<String, Span>,
    /// SQL literals found.
    pub(crate) literals: usize,
    /// SQL the macro cannot see (built at run time), with why.
    pub(crate) unseen: Vec<(Span, String)>,
    /// SQL literals that do not parse, with the parser's error.
    pub(crate) unparsed: Vec<(Span, String)>,
    /// The body's only SQL reads one row of a table by `id`: the table, and the value
    /// bound to the id (see `rows`).
    pub(crate) row_read: Option<(String, syn::Expr)>,
    /// Each table a statement writes, with the value bound to the id of the one row it
    /// writes (`None`: its rows are unknown), and whether it inserts that row.
    pub(crate) row_writes: Vec<(String, Option<syn::Expr>, bool)>,
}

impl Analysis {
    /// Whether every SQL the body runs was found and parsed (and there is some).
    pub(crate) fn complete(&self) -> bool {
        self.literals > 0 && self.unseen.is_empty() && self.unparsed.is_empty()
    }

    /// The first problem that keeps the tables from being inferred: where, and why.
    pub(crate) fn first_problem(&self) -> Option<(Span, String)> {
        self.unparsed.first().or(self.unseen.first()).cloned()
    }

    /// Why the tables cannot be inferred, for an error message.
    pub(crate) fn why_incomplete(&self) -> String {
        match self.first_problem() {
            Some((_, why)) => why,
            None => "no SQL string literal was found in the body".to_owned(),
        }
    }
}

/// Finds and analyzes the SQL of `block`. Without the `sql` feature, nothing is found.
pub(crate) fn analyze(block: &syn::Block) -> Analysis {
    analyze_found(find::scan(block))
}

/// Analyzes one SQL literal (`cached_query!`'s).
pub(crate) fn analyze_literal(sql: &LitStr) -> Analysis {
    analyze_found(find::Found {
        sql: vec![(sql.value(), sql.span())],
        unseen: Vec::new(),
        binds: vec![None],
    })
}

fn analyze_found(found: find::Found) -> Analysis {
    let mut analysis = Analysis {
        literals: found.sql.len(),
        unseen: found.unseen,
        ..Analysis::default()
    };
    #[cfg(feature = "sql")]
    for ((sql, span), binds) in found.sql.into_iter().zip(found.binds) {
        if let Some(rows) = rows::rows(&sql) {
            let bound = |slot: usize| binds.as_ref().and_then(|b| b.get(slot)).cloned();
            if analysis.literals == 1 {
                analysis.row_read = rows.read.and_then(|(t, slot)| Some((t, bound(slot)?)));
            }
            for (table, slot, insert) in rows.writes {
                analysis
                    .row_writes
                    .push((table, slot.and_then(bound), insert));
            }
        }
        match tables::analyze(&sql) {
            Ok(sets) => {
                for table in sets.reads {
                    analysis.reads.entry(table).or_insert(span);
                }
                for table in sets.writes {
                    analysis.writes.entry(table).or_insert(span);
                }
            }
            Err(e) => analysis
                .unparsed
                .push((span, format!("this SQL does not parse ({e})"))),
        }
    }
    #[cfg(not(feature = "sql"))]
    {
        analysis.literals = 0;
    }
    analysis
}

/// What a read or a write declares beside the SQL.
pub(crate) enum Role {
    Reads,
    Writes,
}

/// Checks declared tables against the SQL's: a table the SQL uses that is not declared is
/// an error on the SQL literal; a declared table the SQL never names is an error on the
/// declaration, unless it is in `also` (read through a view, a trigger, a cascade).
pub(crate) fn check_declared(
    cx: &mut Ctxt,
    analysis: &Analysis,
    role: Role,
    declared: &[LitStr],
    also: &[LitStr],
) {
    if !analysis.complete() {
        return;
    }
    let (used, verb, attr) = match role {
        Role::Reads => (&analysis.reads, "reads", "tables"),
        Role::Writes => (&analysis.writes, "writes", "tables"),
    };
    let listed = |lits: &[LitStr]| lits.iter().map(LitStr::value).collect::<Vec<_>>();
    let declared_names = listed(declared);
    let also_names = listed(also);
    for (table, span) in used {
        if !declared_names.contains(table) && !also_names.contains(table) {
            cx.error_at(
                *span,
                format!(
                    "this SQL {verb} `{table}`, which is not in {attr} = {declared_names:?}: \
                     add it, or a write to `{table}` would leave this cache stale"
                ),
            );
        }
    }
    for lit in declared {
        if !used.contains_key(&lit.value()) {
            cx.error_spanned_by(
                lit,
                format!(
                    "the SQL never {} `{}`: remove it, or if it is reached through a view, a \
                     trigger or a cascade, list it in `also = [...]` instead",
                    match role {
                        Role::Reads => "reads",
                        Role::Writes => "writes",
                    },
                    lit.value()
                ),
            );
        }
    }
}

/// The names a table is tagged with at run time: as written, and its unqualified and
/// lower-case forms. A write to `public.users` then meets a read of `users`, and `"Users"`
/// meets `users` (SQLite and MySQL fold case): invalidating more than needed is harmless,
/// missing a read is not.
pub(crate) fn tag_variants(tables: &[LitStr]) -> Vec<LitStr> {
    let mut out: Vec<LitStr> = Vec::new();
    for lit in tables {
        let name = lit.value();
        let last = name.rsplit('.').next().unwrap_or(&name).to_owned();
        for variant in [
            name.clone(),
            name.to_lowercase(),
            last.clone(),
            last.to_lowercase(),
        ] {
            if !out.iter().any(|o| o.value() == variant) {
                out.push(LitStr::new(&variant, lit.span()));
            }
        }
    }
    out
}
