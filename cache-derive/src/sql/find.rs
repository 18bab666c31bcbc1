//! Where a function body passes SQL to sqlx: the string literals of `sqlx::query(..)` and
//! its siblings, of `query!(..)` and its siblings, and of the files `query_file!(..)` names;
//! and the places whose SQL the macro cannot see (built at run time, a `const`, a
//! `QueryBuilder`).

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Expr, ExprLit, Lit, Token};

/// SQL found in a body.
#[derive(Default)]
pub(crate) struct Found {
    /// Each SQL text with the span of the literal (or macro) it came from.
    pub(crate) sql: Vec<(String, Span)>,
    /// Places whose SQL cannot be read at compile time, with why.
    pub(crate) unseen: Vec<(Span, String)>,
    /// For each of `sql`, the values bound to its placeholders in order, when the query
    /// binds them right there (`query(..).bind(a).bind(b)`, `query!(.., a, b)`).
    pub(crate) binds: Vec<Option<Vec<Expr>>>,
}

/// Functions taking the SQL as their first argument.
const FUNCTIONS: &[&str] = &[
    "query",
    "query_as",
    "query_scalar",
    "query_with",
    "query_as_with",
    "query_scalar_with",
    "raw_sql",
];

pub(crate) fn scan(block: &syn::Block) -> Found {
    let mut finder = Finder::default();
    finder.visit_block(block);
    finder.found
}

#[derive(Default)]
struct Finder {
    found: Found,
    /// The binds of the query chains met, by the address of their SQL literal.
    chains: Vec<(*const syn::LitStr, Vec<Expr>)>,
}

fn literal(expr: &Expr) -> Option<&syn::LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        Expr::Group(g) => literal(&g.expr),
        Expr::Paren(p) => literal(&p.expr),
        _ => None,
    }
}

impl Finder {
    fn push(&mut self, sql: String, span: Span, binds: Option<Vec<Expr>>) {
        self.found.sql.push((sql, span));
        self.found.binds.push(binds);
    }

    fn sql_argument(&mut self, arg: Option<&Expr>, at: Span, what: &str) {
        match arg.map(|a| (a, literal(a))) {
            Some((_, Some(lit))) => {
                let binds = self
                    .chains
                    .iter()
                    .position(|(l, _)| std::ptr::eq(*l, lit))
                    .map(|i| self.chains.swap_remove(i).1);
                self.push(lit.value(), lit.span(), binds);
            }
            Some((arg, None)) => self.found.unseen.push((
                arg.span(),
                format!("the SQL of this `{what}` is not a string literal"),
            )),
            None => self
                .found
                .unseen
                .push((at, format!("this `{what}` has no SQL argument"))),
        }
    }

    fn query_macro(&mut self, mac: &syn::Macro) {
        let Some(name) = mac.path.segments.last().map(|s| s.ident.to_string()) else {
            return;
        };
        // query_as!(Type, "SQL", ...): the SQL is the second argument.
        let (position, file) = match name.as_str() {
            "query" | "query_unchecked" | "query_scalar" | "query_scalar_unchecked" => (0, false),
            "query_as" | "query_as_unchecked" => (1, false),
            "query_file"
            | "query_file_unchecked"
            | "query_file_scalar"
            | "query_file_scalar_unchecked" => (0, true),
            "query_file_as" | "query_file_as_unchecked" => (1, true),
            _ => return,
        };
        let args = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated);
        let Ok(args) = args else {
            self.found.unseen.push((
                mac.span(),
                format!("the arguments of `{name}!` do not parse"),
            ));
            return;
        };
        let Some(lit) = args.iter().nth(position).and_then(literal) else {
            self.found.unseen.push((
                mac.span(),
                format!("`{name}!` without a SQL string literal"),
            ));
            return;
        };
        let binds = Some(args.iter().skip(position + 1).cloned().collect());
        if !file {
            self.push(lit.value(), lit.span(), binds);
            return;
        }
        // As sqlx does: relative to the crate's manifest directory.
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let path = std::path::Path::new(&dir).join(lit.value());
        match std::fs::read_to_string(&path) {
            Ok(sql) => self.push(sql, lit.span(), binds),
            Err(e) => self
                .found
                .unseen
                .push((lit.span(), format!("cannot read {}: {e}", path.display()))),
        }
    }
}

/// Awaited methods that run no SQL of the caller's: transaction and connection control.
const CONTROL: &[&str] = &[
    "begin",
    "begin_with",
    "commit",
    "rollback",
    "acquire",
    "close",
    "ping",
    "detach",
];

/// Macros whose arguments may not parse as expressions but run no SQL.
const SAFE_MACROS: &[&str] = &[
    "matches",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "write",
    "writeln",
    "format",
    "format_args",
    "print",
    "println",
    "eprint",
    "eprintln",
    "panic",
    "unreachable",
    "todo",
    "unimplemented",
    "vec",
    "concat",
    "stringify",
    "include_str",
    "env",
    "cfg",
    "debug",
    "info",
    "warn",
    "error",
    "trace",
];

/// The methods of an sqlx query a visible query may chain before it is awaited.
const QUERY_METHODS: &[&str] = &[
    "bind",
    "persistent",
    "map",
    "try_map",
    "fetch",
    "fetch_one",
    "fetch_optional",
    "fetch_all",
    "fetch_many",
    "execute",
    "execute_many",
];

/// The query macros whose SQL the finder reads.
pub(crate) const MACROS: &[&str] = &[
    "query",
    "query_unchecked",
    "query_scalar",
    "query_scalar_unchecked",
    "query_as",
    "query_as_unchecked",
    "query_file",
    "query_file_unchecked",
    "query_file_scalar",
    "query_file_scalar_unchecked",
    "query_file_as",
    "query_file_as_unchecked",
];

/// Whether `expr` is an sqlx query built right there: a query function with a literal or a
/// query macro, then only query methods (`.bind(..)`, `.fetch_one(..)`, `.map(..)`): a
/// combinator such as `.then(..)` may run anything.
fn is_visible_query(expr: &Expr) -> bool {
    match expr {
        Expr::MethodCall(call) => {
            QUERY_METHODS.contains(&call.method.to_string().as_str())
                && is_visible_query(&call.receiver)
        }
        Expr::Call(call) => match &*call.func {
            Expr::Path(path) => {
                let segments: Vec<String> = path
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                let last = segments.last().map(String::as_str).unwrap_or_default();
                (segments.len() == 1 || segments[0] == "sqlx")
                    && FUNCTIONS.contains(&last)
                    && call.args.first().and_then(literal).is_some()
            }
            _ => false,
        },
        // sqlx's query macros only: `query_titles!(..)` of the user's may run anything.
        Expr::Macro(mac) => mac
            .mac
            .path
            .segments
            .last()
            .is_some_and(|s| MACROS.contains(&s.ident.to_string().as_str())),
        Expr::Paren(p) => is_visible_query(&p.expr),
        Expr::Group(g) => is_visible_query(&g.expr),
        _ => false,
    }
}

/// The SQL literal of a query chain `query(".."). … .bind(a). …` and the values it binds,
/// in order; `None` for anything else.
fn chain(expr: &Expr) -> Option<(&syn::LitStr, Vec<Expr>)> {
    match expr {
        Expr::MethodCall(call) => method_chain(call),
        Expr::Call(call) => match &*call.func {
            Expr::Path(path) => {
                let last = path.path.segments.last()?.ident.to_string();
                // `query_with(sql, args)` binds its arguments elsewhere.
                (matches!(last.as_str(), "query" | "query_as" | "query_scalar"))
                    .then(|| Some((literal(call.args.first()?)?, Vec::new())))?
            }
            _ => None,
        },
        Expr::Paren(p) => chain(&p.expr),
        Expr::Group(g) => chain(&g.expr),
        _ => None,
    }
}

fn method_chain(call: &syn::ExprMethodCall) -> Option<(&syn::LitStr, Vec<Expr>)> {
    if !QUERY_METHODS.contains(&call.method.to_string().as_str()) {
        return None;
    }
    let (lit, mut binds) = chain(&call.receiver)?;
    if call.method == "bind" {
        binds.push(call.args.first()?.clone());
    }
    Some((lit, binds))
}

impl<'ast> Visit<'ast> for Finder {
    /// The outermost call of a query chain is met first: it holds all the binds.
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if let Some((lit, binds)) = method_chain(call)
            && !self.chains.iter().any(|(l, _)| std::ptr::eq(*l, lit))
        {
            self.chains.push((lit, binds));
        }
        syn::visit::visit_expr_method_call(self, call);
    }

    /// Anything awaited that is not a query built here (a helper, a repository method)
    /// may run SQL the macro cannot see: the tables cannot be inferred from the literals
    /// alone.
    fn visit_expr_await(&mut self, awaited: &'ast syn::ExprAwait) {
        let control = matches!(&*awaited.base, Expr::MethodCall(call)
            if CONTROL.contains(&call.method.to_string().as_str()));
        if !control && !is_visible_query(&awaited.base) {
            self.found.unseen.push((
                awaited.base.span(),
                "the body awaits something other than a query it builds (a helper, a \
                 repository method), which may run SQL the macro cannot see"
                    .to_owned(),
            ));
        }
        syn::visit::visit_expr_await(self, awaited);
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let Expr::Path(path) = &*call.func {
            let segments: Vec<String> = path
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            let last = segments.last().map(String::as_str).unwrap_or_default();
            // `sqlx::query(..)`, or `query(..)` imported from sqlx.
            let sqlx = segments.len() == 1 || segments.first().is_some_and(|s| s == "sqlx");
            if sqlx && FUNCTIONS.contains(&last) {
                self.sql_argument(call.args.first(), call.span(), last);
            }
            if segments.len() >= 2
                && segments[segments.len() - 2] == "QueryBuilder"
                && (last == "new" || last == "with_arguments")
            {
                self.found.unseen.push((
                    call.span(),
                    "a `QueryBuilder` builds its SQL at run time".to_owned(),
                ));
            }
        }
        syn::visit::visit_expr_call(self, call);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let name = mac.path.segments.last().map(|s| s.ident.to_string());
        if name.as_deref().is_some_and(|n| MACROS.contains(&n)) {
            self.query_macro(mac);
            return;
        }
        // Another macro (`tokio::try_join!`, `vec!`, `tracing::info!`): syn does not look
        // inside. Its arguments are read as expressions where they parse; tokens that do
        // not parse so and mention `await` or a query may hide SQL.
        let name = name.unwrap_or_default();
        match mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            Ok(args) => {
                // `join!`, `try_join!`: each argument is a future the macro awaits.
                let awaits = name.contains("join");
                for arg in &args {
                    if awaits && !is_visible_query(arg) {
                        self.found.unseen.push((
                            arg.span(),
                            format!(
                                "`{name}!` awaits this, which may run SQL the macro cannot see"
                            ),
                        ));
                    }
                    self.visit_expr(arg);
                }
            }
            Err(_) if SAFE_MACROS.contains(&name.as_str()) => {}
            Err(_) => self.found.unseen.push((
                mac.span(),
                format!("the macro `{name}!` may run SQL the macro cannot read"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scan;

    fn found(body: proc_macro2::TokenStream) -> (Vec<String>, Vec<String>) {
        let block: syn::Block = syn::parse2(body).expect("a block");
        let found = scan(&block);
        (
            found.sql.into_iter().map(|(sql, _)| sql).collect(),
            found.unseen.into_iter().map(|(_, why)| why).collect(),
        )
    }

    #[test]
    fn every_sqlx_form_is_found() {
        let (sql, unseen) = found(quote::quote!({
            sqlx::query("A").execute(pool).await?;
            query_as::<_, User>("B").fetch_one(pool).await?;
            sqlx::query_scalar_with("C", args).fetch_one(pool).await?;
            sqlx::raw_sql("D").execute(pool).await?;
            sqlx::query!("E", id).fetch_one(pool).await?;
            sqlx::query_as!(User, "F", id).fetch_one(pool).await?;
            query_scalar_unchecked!("G").fetch_one(pool).await?;
            other::query("not sqlx");
        }));
        assert_eq!(sql, ["A", "B", "C", "D", "E", "F", "G"]);
        assert!(unseen.is_empty(), "{unseen:?}");
    }

    #[test]
    fn binds_are_found_where_the_query_binds_them() {
        let block: syn::Block = syn::parse2(quote::quote!({
            sqlx::query("A").bind(a).bind(&b.id).execute(pool).await?;
            sqlx::query_as!(User, "B", id, name).fetch_one(pool).await?;
            let q = sqlx::query("C");
            q.bind(c).execute(pool).await?;
            sqlx::query_with("D", args).execute(pool).await?;
        }))
        .expect("a block");
        let found = super::scan(&block);
        let binds: Vec<Option<Vec<String>>> = found
            .binds
            .iter()
            .map(|b| {
                b.as_ref().map(|b| {
                    b.iter()
                        .map(|e| quote::quote!(#e).to_string().replace(' ', ""))
                        .collect()
                })
            })
            .collect();
        let s = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(binds, [s(&["a", "&b.id"]), s(&["id", "name"]), None, None]);
    }

    #[test]
    fn a_macro_of_the_users_named_like_a_query_is_not_one() {
        let (sql, unseen) = found(quote::quote!({
            let titles = query_titles_by!(pool, author).await?;
        }));
        assert!(sql.is_empty());
        assert_eq!(
            unseen.len(),
            1,
            "the await of what may run anything: {unseen:?}"
        );
    }

    #[test]
    fn query_files_are_read_relative_to_the_crate() {
        let (sql, unseen) = found(quote::quote!({
            sqlx::query_file_as!(Row, "tests/sql_corpus.txt")
                .fetch_all(pool)
                .await?;
            sqlx::query_file!("tests/no_such_file.sql")
                .fetch_all(pool)
                .await?;
        }));
        assert_eq!(sql.len(), 1);
        assert!(sql[0].contains("-- source:"), "the corpus file's text");
        assert_eq!(unseen.len(), 1);
        assert!(unseen[0].starts_with("cannot read"), "{unseen:?}");
    }

    #[test]
    fn a_helper_awaited_in_the_body_may_run_unseen_sql() {
        let (sql, unseen) = found(quote::quote!({
            let mut tx = pool.begin().await?;
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
                .fetch_one(&mut *tx)
                .await?;
            let q = sqlx::query_as!(User, "SELECT * FROM users")
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            let posts = repo.posts_of(n).await?;
        }));
        assert_eq!(sql.len(), 2);
        assert_eq!(unseen.len(), 1, "only `repo.posts_of(n)`: {unseen:?}");
    }

    #[test]
    fn sql_inside_other_macros_and_combinators_is_not_missed() {
        let (sql, unseen) = found(quote::quote!({
            let (a, b, c) = tokio::try_join!(
                sqlx::query("SELECT 1 FROM users").fetch_all(pool),
                sqlx::query("SELECT 1 FROM posts").fetch_all(pool),
                repo.comments(),
            )?;
            let n = sqlx::query("SELECT 1 FROM tags")
                .fetch_all(pool)
                .then(|_| repo.more())
                .await;
            tokio::select! { x = repo.load() => x, };
        }));
        assert_eq!(
            sql,
            [
                "SELECT 1 FROM users",
                "SELECT 1 FROM posts",
                "SELECT 1 FROM tags"
            ]
        );
        assert_eq!(
            unseen.len(),
            3,
            "try_join!'s await, `.then(..)`, select!: {unseen:?}"
        );
    }

    #[test]
    fn sql_built_at_run_time_is_unseen() {
        let (sql, unseen) = found(quote::quote!({
            sqlx::query(&format!("SELECT * FROM {table}"))
                .fetch_all(pool)
                .await?;
            sqlx::query_as(USERS_SQL).fetch_all(pool).await?;
            let mut qb = sqlx::QueryBuilder::new("SELECT * FROM users WHERE ");
        }));
        assert!(sql.is_empty());
        let literal = unseen.iter().filter(|u| u.contains("not a string literal"));
        assert_eq!(literal.count(), 2, "{unseen:?}");
        assert!(
            unseen.iter().any(|u| u.contains("QueryBuilder")),
            "{unseen:?}"
        );
    }
}
