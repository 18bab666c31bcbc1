//! `#[invalidates(...)]`: attribute parsing, checks, and the rewrite of the `async fn`.

use proc_macro2::{Ident, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, LitStr, Token, Type};

use crate::args::{self, Role};
use crate::attr::{self, Attr};
use crate::body::{self, Body};
use crate::ctxt::Ctxt;
use crate::expand::{CacheBinding, Private, bind_cache, fake_return_edge, local, with_original};
use crate::receiver::{self, FieldPath};
use crate::{row_arg, sql};

const MACRO: &str = "#[invalidates]";
const KEYS: &str = "`tables`, `table`, `also`, `cache`, or entity types such as `User`";

/// A table to invalidate.
enum Target {
    /// `tables = ["users"]`.
    Name(LitStr),
    /// `User`: `<User as CacheEntity>::TABLE`.
    Entity(Box<Type>),
}

struct Args {
    targets: Vec<Target>,
    /// `tables = USER_TABLES`: a `&[&str]` or `[&str; N]` the macro cannot read.
    tables_expr: Option<Expr>,
    /// Tables written that the SQL does not name (by a trigger, a cascade).
    also: Vec<LitStr>,
    cache: Option<Expr>,
    /// An unknown key was given (and reported): no further complaint about the tables.
    unknown: bool,
}

// #[invalidates(User, Post)], #[invalidates(tables = ["users"])], #[invalidates(table = "users")],
// #[invalidates(User, cache = &self.cache)]
fn parse_args(cx: &mut Ctxt, input: ParseStream) -> syn::Result<Args> {
    let mut table: Attr<Vec<LitStr>> = Attr::none(MACRO, "table");
    let mut tables: Attr<Vec<LitStr>> = Attr::none(MACRO, "tables");
    let mut tables_expr: Option<Expr> = None;
    let mut also: Attr<Vec<LitStr>> = Attr::none(MACRO, "also");
    let mut cache = Attr::none(MACRO, "cache");
    let mut entities: Vec<Type> = Vec::new();
    // After an unknown key, "no tables" would only repeat the same mistake.
    let mut unknown = false;
    while !input.is_empty() {
        if input.peek(syn::Ident) && input.peek2(Token![=]) {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            match key.to_string().as_str() {
                "table" => {
                    let lit = attr::table_name(cx, &value);
                    table.set(cx, &key, lit.into_iter().collect());
                }
                "tables" => match attr::tables(cx, &value) {
                    attr::Tables::Listed(list) => tables.set(cx, &key, list),
                    attr::Tables::Expr(expr) => {
                        tables.set(cx, &key, Vec::new());
                        tables_expr = Some(expr);
                    }
                },
                "also" => {
                    let list = attr::table_list(cx, &value);
                    also.set(cx, &key, list);
                }
                "cache" => cache.set(cx, &key, value),
                _ => {
                    unknown = true;
                    cx.error_spanned_by(
                        &key,
                        format!("unknown key `{key}` in {MACRO}; expected one of: {KEYS}"),
                    );
                }
            }
        } else {
            let ty: Type = input.parse()?;
            let text = ty.to_token_stream().to_string();
            if entities
                .iter()
                .any(|e| e.to_token_stream().to_string() == text)
            {
                cx.error_spanned_by(&ty, format!("duplicate entity `{}`", text.replace(' ', "")));
            } else {
                entities.push(ty);
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }

    if let Some(expr) = &tables_expr
        && (table.is_set() || !entities.is_empty())
    {
        cx.error_spanned_by(
            expr,
            "`tables = <expression>` lists every table: give no `table` or entity beside it",
        );
    }
    let mut names: Vec<LitStr> = Vec::new();
    for lit in table.get().into_iter().chain(tables.get()).flatten() {
        if names.iter().any(|n| n.value() == lit.value()) {
            cx.error_spanned_by(&lit, format!("duplicate table {:?}", lit.value()));
        } else {
            names.push(lit);
        }
    }
    let mut targets: Vec<Target> = names.into_iter().map(Target::Name).collect();
    targets.extend(entities.into_iter().map(|ty| Target::Entity(Box::new(ty))));
    // No tables given: inferred from the SQL when the function is checked. After an
    // unknown key, "no tables" would only repeat the same mistake.
    Ok(Args {
        unknown,
        targets,
        tables_expr,
        also: also.get().unwrap_or_default(),
        cache: cache.get(),
    })
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let args = match (|input: ParseStream| parse_args(&mut cx, input)).parse2(args) {
        Ok(args) => Some(args),
        Err(e) => {
            cx.push(e);
            None
        }
    };
    let parsed: ItemFn = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(e) => {
            cx.push(syn::Error::new(
                e.span(),
                format!("#[invalidates] applies to an `async fn` with a body: {e}"),
            ));
            return with_original(cx.check(), item);
        }
    };
    let checked = args.and_then(|args| check(&mut cx, args, &parsed));
    match (cx.check(), checked) {
        (Ok(()), Some(write)) => generate(&write),
        (checked, _) => with_original(checked, item),
    }
}

/// A checked `#[invalidates]` function.
struct Write<'a> {
    args: Args,
    item: &'a ItemFn,
    body: Body<'a>,
    /// Parameters bound to a name: each is asked, by its type, whether it is a
    /// transaction that takes the tables.
    params: Vec<(&'a Ident, &'a syn::PatType)>,
    /// The fields of `self` the body reads, asked the same (a repository holding the
    /// transaction or its connection).
    self_fields: Vec<FieldPath>,
    /// The rows the SQL writes: a table's name and the id of a row, or `None` when a
    /// statement's rows are unknown.
    rows: Vec<(LitStr, Option<TokenStream>, bool)>,
}

/// Checks the declared tables against the SQL's writes, or infers them from it. Returns
/// the rows the SQL writes, each table with the value bound to the id of the one row a
/// statement writes (`None`: unknown); nothing when some SQL cannot be seen.
fn write_set(
    cx: &mut Ctxt,
    args: &mut Args,
    block: &syn::Block,
) -> Vec<(String, Option<syn::Expr>, bool)> {
    if let (Some(_), Some(first)) = (&args.tables_expr, args.also.first()) {
        cx.error_spanned_by(
            first,
            "`also` cannot add to `tables = <expression>`: list those tables in it",
        );
    }
    if args.tables_expr.is_some() || args.targets.is_empty() && args.unknown {
        return Vec::new();
    }
    let analysis = sql::analyze(block);
    let names: Vec<LitStr> = args
        .targets
        .iter()
        .filter_map(|t| match t {
            Target::Name(lit) => Some(lit.clone()),
            Target::Entity(_) => None,
        })
        .collect();
    let entities = args.targets.len() - names.len();
    if args.targets.is_empty() {
        if analysis.complete() && !(analysis.writes.is_empty() && args.also.is_empty()) {
            args.targets = analysis
                .writes
                .iter()
                .map(|(table, span)| Target::Name(LitStr::new(table, *span)))
                .collect();
        } else {
            let why = if analysis.complete() {
                "its SQL writes no table".to_owned()
            } else {
                analysis.why_incomplete()
            };
            let span = analysis
                .first_problem()
                .map_or_else(proc_macro2::Span::call_site, |(span, _)| span);
            cx.error_at(
                span,
                format!(
                    "#[invalidates] cannot tell which tables this function writes: {why}. \
                     Declare them: `#[invalidates(User)]` (an entity type) or \
                     `#[invalidates(tables = [\"users\"])]`"
                ),
            );
        }
    } else if entities == 0 {
        sql::check_declared(cx, &analysis, sql::Role::Writes, &names, &args.also);
    }
    args.targets
        .extend(args.also.iter().cloned().map(Target::Name));
    if analysis.complete() {
        analysis.row_writes
    } else {
        Vec::new()
    }
}

fn check<'a>(cx: &mut Ctxt, mut args: Args, item: &'a ItemFn) -> Option<Write<'a>> {
    let written = write_set(cx, &mut args, &item.block);
    let Some(body) = body::of(item) else {
        cx.error_spanned_by(
            item.sig.fn_token,
            "#[invalidates] requires an `async fn`: invalidation runs after the write, asynchronously",
        );
        return None;
    };
    let params = args::classify(&item.sig)
        .into_iter()
        .filter_map(|role| match role {
            Role::Named(ident, pt) => Some((ident, pt)),
            _ => None,
        })
        .collect();
    let self_fields = match args::receiver(&item.sig) {
        Some(_) => receiver::reads(body.stmts, body.self_name).all,
        None => Vec::new(),
    };
    // Each table a statement writes, under each name it is tagged with, and the id of the
    // row written when it is a value the body binds as given (`None`: the whole table).
    let mut rows = Vec::new();
    if body.self_name == "self" {
        for (table, value, insert) in &written {
            let value = value
                .as_ref()
                .and_then(|v| row_arg::param_value(v, &item.sig, &item.block));
            let lit = LitStr::new(table, proc_macro2::Span::call_site());
            for variant in sql::tag_variants(&[lit]) {
                rows.push((variant, value.clone(), *insert));
            }
        }
        // A table in `also` is written by something the SQL does not show (a trigger, a
        // cascade), which may touch any of its rows.
        for variant in sql::tag_variants(&args.also) {
            rows.push((variant, None, false));
        }
    }
    Some(Write {
        args,
        item,
        body,
        params,
        self_fields,
        rows,
    })
}

// Input:
//
//     #[invalidates(User)]
//     async fn rename(tx: &mut Transaction<'_, Postgres>, id: i64, name: &str) -> sqlx::Result<u64> { body }
//
// Output:
//
//     async fn rename(tx: &mut Transaction<'_, Postgres>, id: i64, name: &str) -> sqlx::Result<u64> {
//         let __cache: &Cache = global();
//         let __tables: &[&str] = &[<User as CacheEntity>::TABLE];
//         // Each parameter and each field of `self` the body reads, by its type: the
//         // cache's `Transaction` takes the tables (it invalidates after COMMIT), and so
//         // does a connection it handed out; a plain `sqlx::Transaction` is a compile error.
//         let __deferred = false | deferred((&&&&&TxWrite(&tx)).defer(__tables)) | ...;
//         let __guard = WriteGuard::new(__cache, __tables, __deferred);
//         let __output: sqlx::Result<u64> = async move { <fake return edge> body }.await;
//         __guard.finish().await;      // dropped unfinished (panic, cancel): invalidates then
//         __output
//     }
fn generate(write: &Write) -> TokenStream {
    let Write {
        args,
        item,
        body,
        params,
        self_fields,
        rows,
    } = write;
    let private = Private;
    let cache_var = local("__cache");
    let output_var = local("__output");
    let tables_var = local("__tables");
    let deferred_var = local("__deferred");
    let guard_var = local("__guard");
    let sig = &item.sig;
    let stmts = body.stmts;
    let output = match body.output {
        Some(ty) => ty.to_token_stream(),
        None => quote!(()),
    };
    let fake_return = match body.output {
        Some(ty) => fake_return_edge(ty),
        None => TokenStream::new(),
    };

    // The body runs while the write guard holds the cache: own it when it is borrowed from
    // what the body may move or mutate.
    let CacheBinding { borrow, own } = bind_cache(args.cache.as_ref(), args::cache_param(sig));
    let cache = quote!(#borrow #own);

    let names: Vec<LitStr> = args
        .targets
        .iter()
        .filter_map(|t| match t {
            Target::Name(lit) => Some(lit.clone()),
            Target::Entity(_) => None,
        })
        .collect();
    let entities = args.targets.iter().filter_map(|t| match t {
        Target::Entity(ty) => Some(quote_spanned! {ty.span()=>
            <#ty as #private::CacheEntity>::TABLE
        }),
        Target::Name(_) => None,
    });
    let tags = sql::tag_variants(&names);
    let tables = tags.iter().map(|t| t.to_token_stream()).chain(entities);
    let tables = match &args.tables_expr {
        Some(expr) => quote!(
            ::core::convert::AsRef::<[&'static ::core::primitive::str]>::as_ref(&#expr)
        ),
        None => quote!(&[#(#tables),*]),
    };

    let defer = |value: TokenStream, first: proc_macro2::Span| {
        quote_spanned! {first=>
            | #private::deferred((&&&&&#private::TxWrite(&#value)).defer(#tables_var))
        }
    };
    let defers = params
        .iter()
        .map(|(ident, pt)| defer(ident.to_token_stream(), attr::span_range(*pt).0))
        .chain(
            self_fields
                .iter()
                .map(|field| defer(field.to_token_stream(), field.span)),
        );

    // The ids are read before the body runs: it may move the parameters.
    let rows_var = local("__rows");
    let adds = rows
        .iter()
        .map(|(table, value, insert)| match (value, insert) {
            (Some(value), false) => quote! {
                #rows_var.add(#table, (&#private::RowProbe(&(#value))).row());
            },
            (Some(value), true) => quote! {
                #rows_var.add_inserted(#table, (&#private::RowProbe(&(#value))).row());
            },
            (None, _) => quote!(#rows_var.add(#table, ::core::option::Option::None);),
        });
    let rows_expr = if rows.is_empty() {
        quote!(#private::WrittenRows::new())
    } else {
        quote! {{
            #[allow(unused_imports)]
            use #private::{KnownRow as _, UnknownRow as _};
            let mut #rows_var = #private::WrittenRows::new();
            #(#adds)*
            #rows_var
        }}
    };

    body.emit(
        item,
        quote! {
                #cache
                let #tables_var: &[&::core::primitive::str] = #tables;
                let #deferred_var: ::core::primitive::bool = {
                    #[allow(unused_imports)]
                    use #private::{
                        AcquireTxWrite as _, CacheTxWrite as _, ExecutorTxWrite as _,
                        OtherTxWrite as _, PlainTxWrite as _,
                    };
                    false #(#defers)*
                };
                let #guard_var = #private::WriteGuard::with_rows(
                    #cache_var,
                    #tables_var,
                    #deferred_var,
                    #rows_expr,
                );
                let #output_var: #output = async move {
                    #fake_return
                    #(#stmts)*
                }
                .await;
                #guard_var.finish().await;
                #output_var
        },
    )
}
