//! `cached_query!(ttl = .., <query>.fetch_*(executor))`: one inline query, cached.
//!
//! The query is an sqlx query macro (`query_as!`, `query_scalar!`, ...) or function
//! (`sqlx::query_as("..")` with `.bind(..)`s), ended by `fetch_one`, `fetch_optional` or
//! `fetch_all`. The key is the SQL and the bound arguments; the tables are those the SQL
//! reads; a call given a connection inside a transaction runs uncached; errors are never
//! cached. Each argument and the executor are evaluated once, before the query, as in the
//! original expression.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprCall, ExprLit, ExprMacro, ExprMethodCall, Ident, Lit, LitStr, Token};

use crate::attr::{self, Tables};
use crate::ctxt::Ctxt;
use crate::expand::{Private, local};
use crate::{fingerprint, sql, ttl};

const MACRO: &str = "cached_query!";

struct Input {
    ttl: Option<TokenStream>,
    cache: Option<Expr>,
    tables: Option<Tables>,
    also: Vec<LitStr>,
    query: Expr,
    /// `ttl`, `table(s)` and `also` as written: part of the key, as for `#[cached]` (an
    /// entry stored with other tags or another expiry is not this site's).
    settings: TokenStream,
}

fn parse(cx: &mut Ctxt, input: ParseStream) -> syn::Result<Input> {
    let (mut ttl, mut cache, mut tables, mut also) = (None, None, None, Vec::new());
    let mut settings = TokenStream::new();
    while input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
        let key: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        input.parse::<Token![,]>()?;
        if key != "cache" {
            settings.extend(quote!(#key = #value,));
        }
        match key.to_string().as_str() {
            "ttl" => ttl = cx.ok(ttl::expand(&value)),
            "cache" => cache = Some(value),
            "tables" => tables = Some(attr::tables(cx, &value)),
            "table" => tables = attr::table_name(cx, &value).map(|t| Tables::Listed(vec![t])),
            "also" => also = attr::table_list(cx, &value),
            _ => cx.error_spanned_by(
                &key,
                format!(
                    "unknown key `{key}` in {MACRO}; expected `ttl`, `cache`, `table`, \
                     `tables` or `also`, then the query"
                ),
            ),
        }
    }
    let query: Expr = input.parse()?;
    if !input.is_empty() {
        input.parse::<Token![,]>()?;
    }
    Ok(Input {
        ttl,
        cache,
        tables,
        also,
        query,
        settings,
    })
}

/// The query taken apart: the SQL, the bound arguments, the executor, and how to rebuild
/// the expression with each of those replaced by a local.
struct Query {
    sql: LitStr,
    args: Vec<Expr>,
    executor: Expr,
    /// The expression with argument `i` as `__arg{i}` and the executor as `__executor`.
    rebuilt: TokenStream,
}

const FETCHES: &[&str] = &["fetch_one", "fetch_optional", "fetch_all"];

fn literal(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        Expr::Group(g) => literal(&g.expr),
        Expr::Paren(p) => literal(&p.expr),
        _ => None,
    }
}

fn dissect(query: &Expr) -> Result<Query, syn::Error> {
    let shape = || {
        syn::Error::new_spanned(
            query,
            format!(
                "{MACRO} caches one read: give it `<query>.fetch_one(executor)`, \
                 `.fetch_optional(executor)` or `.fetch_all(executor)`, where the query is \
                 `sqlx::query_as!(..)`, `sqlx::query_scalar!(..)` or \
                 `sqlx::query_as(\"..\").bind(..)`"
            ),
        )
    };
    let Expr::MethodCall(fetch) = query else {
        return Err(shape());
    };
    if !FETCHES.contains(&fetch.method.to_string().as_str()) || fetch.args.len() != 1 {
        return Err(shape());
    }
    let executor = fetch.args[0].clone();
    let method = &fetch.method;
    let turbofish = &fetch.turbofish;
    let executor_var = local("__executor");
    let (sql, args, receiver) = match &*fetch.receiver {
        Expr::Macro(mac) => query_macro(mac)?,
        other => query_function(other)?,
    };
    Ok(Query {
        sql,
        args,
        executor,
        rebuilt: quote!(#receiver.#method #turbofish(#executor_var)),
    })
}

fn arg_var(i: usize) -> Ident {
    format_ident!("__arg{}", i, span = Span::mixed_site())
}

/// `query_as!(User, "SQL", a, b)`: the SQL, its arguments, and the macro call with them
/// replaced.
fn query_macro(mac: &ExprMacro) -> syn::Result<(LitStr, Vec<Expr>, TokenStream)> {
    let name = mac
        .mac
        .path
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    let position = match name.as_str() {
        "query" | "query_unchecked" | "query_scalar" | "query_scalar_unchecked" => 0,
        "query_as" | "query_as_unchecked" => 1,
        _ => {
            return Err(syn::Error::new_spanned(
                &mac.mac.path,
                format!("{MACRO} takes an sqlx query macro such as `query_as!` or `query_scalar!`"),
            ));
        }
    };
    let parsed = mac
        .mac
        .parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)?;
    let all: Vec<&Expr> = parsed.iter().collect();
    let sql = all
        .get(position)
        .and_then(|e| literal(e))
        .cloned()
        .ok_or_else(|| syn::Error::new_spanned(&mac.mac, "expected the SQL as a string literal"))?;
    let path = &mac.mac.path;
    let head = &all[..=position];
    let vars: Vec<Ident> = (0..all.len() - position - 1).map(arg_var).collect();
    let rebuilt = quote!(#path!(#(#head,)* #(#vars),*));
    let args = all[position + 1..].iter().map(|e| (*e).clone()).collect();
    Ok((sql, args, rebuilt))
}

/// `sqlx::query_as::<_, User>("SQL").bind(a).bind(b)`.
fn query_function(expr: &Expr) -> syn::Result<(LitStr, Vec<Expr>, TokenStream)> {
    let mut binds: Vec<&Expr> = Vec::new();
    let mut at = expr;
    while let Expr::MethodCall(ExprMethodCall {
        receiver,
        method,
        args,
        ..
    }) = at
    {
        if method != "bind" || args.len() != 1 {
            return Err(syn::Error::new_spanned(
                method,
                format!("{MACRO}: only `.bind(..)` may come between the query and the fetch"),
            ));
        }
        binds.push(&args[0]);
        at = receiver;
    }
    binds.reverse();
    let Expr::Call(ExprCall { func, args, .. }) = at else {
        return Err(syn::Error::new_spanned(
            at,
            format!(
                "{MACRO} takes `sqlx::query_as(\"..\")`, `sqlx::query_scalar(\"..\")` or a query macro"
            ),
        ));
    };
    let sql = args
        .first()
        .and_then(literal)
        .cloned()
        .ok_or_else(|| syn::Error::new_spanned(at, "expected the SQL as a string literal"))?;
    let vars: Vec<Ident> = (0..binds.len()).map(arg_var).collect();
    let rebuilt = quote!(#func(#sql) #(.bind(#vars))*);
    Ok((sql, binds.into_iter().cloned().collect(), rebuilt))
}

pub(crate) fn expand(tokens: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let parsed = syn::parse::Parser::parse2(|input: ParseStream| parse(&mut cx, input), tokens);
    let checked = parsed.and_then(|input| {
        let query = dissect(&input.query)?;
        let tables = tables(&mut cx, &input, &query.sql);
        Ok((input, query, tables))
    });
    match (checked, cx.check()) {
        (Ok((input, query, tables)), Ok(())) => generate(&input, &query, &tables),
        (Ok(_), Err(e)) => errors(e),
        (Err(e), found) => errors(found.err().map_or(e.clone(), |mut all| {
            all.combine(e);
            all
        })),
    }
}

/// Every error as a statement of one block: the macro stands in expression position.
fn errors(e: syn::Error) -> TokenStream {
    let errors = e.into_iter().map(|e| e.to_compile_error());
    quote!({ #(#errors;)* })
}

/// The tables the SQL reads (checked against declared ones, if any).
fn tables(cx: &mut Ctxt, input: &Input, sql: &LitStr) -> TokenStream {
    let analysis = sql::analyze_literal(sql);
    if let Some((span, why)) = analysis.first_problem()
        && input.tables.is_none()
    {
        cx.error_at(
            span,
            format!("{MACRO} cannot tell which tables this query reads: {why}; declare them with `tables = [...]`"),
        );
    }
    if let Some((table, span)) = analysis.writes.iter().next() {
        cx.error_at(
            *span,
            format!("{MACRO} caches reads, and this SQL writes `{table}`: run it uncached, under #[invalidates]"),
        );
    }
    match &input.tables {
        Some(Tables::Listed(list)) => {
            sql::check_declared(cx, &analysis, sql::Role::Reads, list, &input.also);
            let all: Vec<LitStr> = list.iter().chain(&input.also).cloned().collect();
            let tags = sql::tag_variants(&all);
            quote!(&[#(#tags),*])
        }
        Some(Tables::Expr(expr)) => {
            if let Some(first) = input.also.first() {
                cx.error_spanned_by(
                    first,
                    "`also` cannot add to `tables = <expression>`: list those tables in it",
                );
            }
            quote!(::core::convert::AsRef::<[&'static ::core::primitive::str]>::as_ref(&#expr))
        }
        None => {
            let names: Vec<LitStr> = analysis
                .reads
                .keys()
                .map(|t| LitStr::new(t, sql.span()))
                .chain(input.also.iter().cloned())
                .collect();
            if names.is_empty() && analysis.first_problem().is_none() && analysis.writes.is_empty()
            {
                cx.error_spanned_by(
                    sql,
                    format!("{MACRO}: this SQL reads no table; declare the tables it depends on with `tables = [...]`"),
                );
            }
            let tags = sql::tag_variants(&names);
            quote!(&[#(#tags),*])
        }
    }
}

// Output, for `cached_query!(ttl = "60s", sqlx::query_as!(User, "SQL", id).fetch_optional(&pool))`:
//
//     {
//         let __arg0 = id;
//         let __executor = &pool;
//         async move {
//             static __SCOPE: KeyScope = KeyScope::generated(None, "<hash of the tokens>");
//             let __cache: &Cache = global();
//             let __call = { key args: (&&&&&Arg(&__arg0)).__param(), the executor probed };
//             cached_query(__cache, __call, &["users"], ttl, move || async move {
//                 sqlx::query_as!(User, "SQL", __arg0).fetch_optional(__executor).await
//             }).await
//         }
//     }
fn generate(input: &Input, query: &Query, tables: &TokenStream) -> TokenStream {
    let private = Private;
    let sql_lit = &query.sql;
    let rebuilt_tokens = &query.rebuilt;
    let cache_var = local("__cache");
    let call_var = local("__call");
    let args_var = local("__args");
    let executor_var = local("__executor");
    // The SQL, the query's shape (its type parameters, the fetch) and the settings: the
    // same query with the same `ttl`, `tables` and `also` anywhere in the program shares
    // entries, whatever the cache or executor.
    let code = fingerprint::of(&input.settings, &quote!(#sql_lit #rebuilt_tokens));
    let ttl = match &input.ttl {
        Some(ttl) => ttl.clone(),
        None => quote!(#private::ttl_or_default(#cache_var, ::core::option::Option::None)),
    };
    // Evaluated before the future, like the arguments: the future holds a reference.
    let cache = match &input.cache {
        Some(expr) => quote!(let #cache_var: &#private::Cache = #expr;),
        None => quote!(let #cache_var: &#private::Cache = #private::global();),
    };
    let bindings = query.args.iter().enumerate().map(|(i, arg)| {
        let var = arg_var(i);
        quote_spanned!(arg.span()=> let #var = #arg;)
    });
    let keyed = (0..query.args.len()).map(|i| {
        let var = arg_var(i);
        let at = &query.args[i];
        quote_spanned!(at.span()=> #args_var.add((&&&&&#private::Arg(&#var)).__param());)
    });
    let executor = &query.executor;
    let rebuilt = &query.rebuilt;
    let sql = &query.sql;
    quote! {{
        #(#bindings)*
        let #executor_var = #executor;
        #cache
        async move {
            static __SCOPE: #private::KeyScope = #private::KeyScope::generated(
                ::core::option::Option::Some("cached_query!"),
                #code,
            );
            let #call_var = {
                #[allow(unused_imports)]
                use #private::{
                    AcquireParam as _, ConnectionParam as _, ExecutorParam as _,
                    HandleParam as _, KeyedParam as _,
                };
                let mut #args_var = #private::KeyArgs::new();
                #args_var.push(#sql);
                #(#keyed)*
                #args_var.probe((&&&&&#private::Arg(&#executor_var)).__param());
                #args_var.finish(#cache_var, __SCOPE.instance(::core::any::type_name_of_val(&|| ())))
            };
            #private::cached_query(#cache_var, #call_var, #tables, #ttl, move || async move {
                #rebuilt.await
            })
            .await
        }
    }}
}
