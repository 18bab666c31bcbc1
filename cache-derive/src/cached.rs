//! `#[cached(...)]`: attribute parsing, checks, and the rewrite of the `async fn`.

use proc_macro2::{Ident, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, LitStr, Path, Token, Type};

use crate::args::{self, CacheParam, Role};
use crate::attr::{self, Attr, Tables};
use crate::body::{self, Body};
use crate::ctxt::Ctxt;
use crate::expand::{CacheBinding, Private, bind_cache, fake_return_edge, local, with_original};
use crate::receiver::{self, FieldPath};
use crate::{fingerprint, row_arg, sql, ttl};

const MACRO: &str = "#[cached]";
const KEYS: &[&str] = &[
    "ttl",
    "table",
    "tables",
    "also",
    "skip",
    "key",
    "cache",
    "name",
    "self_key",
    "swr",
    "stale_on_error",
    "refresh_ahead",
];

/// The checked attribute arguments.
#[derive(Default)]
struct Args {
    /// Tokens evaluating to a `Ttl`; `None`: the entity's or the settings' default.
    ttl: Option<TokenStream>,
    /// Explicit tables; `None`: inferred from the SQL, or from the return type's entity.
    tables: Option<Tables>,
    /// Tables read that the SQL does not name (through a view, a trigger).
    also: Vec<LitStr>,
    skip: Vec<Ident>,
    key: Option<Expr>,
    cache: Option<Expr>,
    name: Option<LitStr>,
    /// What keys `self` instead of the fields the body reads.
    self_key: Option<(Path, Expr)>,
    /// `swr`, `stale_on_error`, `refresh_ahead`: the function's own stale windows.
    windows: [Option<std::time::Duration>; 3],
    /// The attribute as written: part of the code fingerprint, so that fixing a TTL or
    /// the tables gives new keys (a remote backend still holds entries stored with the old
    /// tags and expiry).
    tokens: TokenStream,
}

fn parse_args(cx: &mut Ctxt, tokens: TokenStream) -> Args {
    let written = tokens.clone();
    let mut ttl = Attr::none(MACRO, "ttl");
    let mut table = Attr::none(MACRO, "table");
    let mut tables = Attr::none(MACRO, "tables");
    let mut also = Attr::none(MACRO, "also");
    let mut skip: Attr<(Path, Vec<Ident>)> = Attr::none(MACRO, "skip");
    let mut key: Attr<(Path, Expr)> = Attr::none(MACRO, "key");
    let mut cache = Attr::none(MACRO, "cache");
    let mut name = Attr::none(MACRO, "name");
    let mut self_key: Attr<(Path, Expr)> = Attr::none(MACRO, "self_key");
    let mut swr = Attr::none(MACRO, "swr");
    let mut on_error = Attr::none(MACRO, "stale_on_error");
    let mut ahead = Attr::none(MACRO, "refresh_ahead");

    let parser = syn::meta::parser(|meta| {
        match attr::key_of(&meta).as_str() {
            // #[cached(ttl = "60s")], ttl = 60000, ttl = true, ttl = expr
            "ttl" => {
                let expr: Expr = meta.value()?.parse()?;
                if let Some(tokens) = cx.ok(ttl::expand(&expr)) {
                    ttl.set(cx, &meta.path, tokens);
                }
            }
            // #[cached(table = "users")]
            "table" => {
                let expr: Expr = meta.value()?.parse()?;
                if let Some(lit) = attr::table_name(cx, &expr) {
                    table.set(
                        cx,
                        &meta.path,
                        (meta.path.clone(), Tables::Listed(vec![lit])),
                    );
                }
            }
            // #[cached(tables = ["users", "posts"])], tables = USER_TABLES
            "tables" => {
                let expr: Expr = meta.value()?.parse()?;
                let list = attr::tables(cx, &expr);
                tables.set(cx, &meta.path, (meta.path.clone(), list));
            }
            // #[cached(also = ["user_stats"])]: read through a view or a trigger
            "also" => {
                let expr: Expr = meta.value()?.parse()?;
                let list = attr::table_list(cx, &expr);
                also.set(cx, &meta.path, list);
            }
            // #[cached(skip(pool, request_id))]
            "skip" => {
                let content;
                syn::parenthesized!(content in meta.input);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(
                    &content,
                    Ident::parse_any,
                )?;
                skip.set(
                    cx,
                    &meta.path,
                    (meta.path.clone(), names.into_iter().collect()),
                );
            }
            // #[cached(key = (user.id, page))]
            "key" => {
                let expr: Expr = meta.value()?.parse()?;
                key.set(cx, &meta.path, (meta.path.clone(), expr));
            }
            // #[cached(cache = &self.cache)]
            "cache" => {
                let expr: Expr = meta.value()?.parse()?;
                cache.set(cx, &meta.path, expr);
            }
            // #[cached(name = "users::find")]
            "name" => {
                let expr: Expr = meta.value()?.parse()?;
                match attr::ungroup(&expr) {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(lit), ..
                    }) if !lit.value().trim().is_empty() => {
                        name.set(cx, &meta.path, lit.clone());
                    }
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(lit), ..
                    }) => cx.error_spanned_by(lit, "empty `name`"),
                    other => cx.error_spanned_by(
                        other,
                        "expected a string literal, such as `name = \"users::find\"`",
                    ),
                }
            }
            // #[cached(swr = "30s", stale_on_error = "5m", refresh_ahead = "10s")]
            key @ ("swr" | "stale_on_error" | "refresh_ahead") => {
                let expr: Expr = meta.value()?.parse()?;
                if let Some(d) = duration_literal(cx, key, &expr) {
                    match key {
                        "swr" => swr.set(cx, &meta.path, d),
                        "stale_on_error" => on_error.set(cx, &meta.path, d),
                        _ => ahead.set(cx, &meta.path, d),
                    }
                }
            }
            // #[cached(self_key = self.tenant_id)]
            "self_key" => {
                let expr: Expr = meta.value()?.parse()?;
                self_key.set(cx, &meta.path, (meta.path.clone(), expr));
            }
            _ => attr::unknown_key(cx, &meta, MACRO, KEYS)?,
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, tokens) {
        cx.push(e);
    }

    let table = table.get();
    let tables = tables.get();
    if let (Some(_), Some((path, _))) = (&table, &tables) {
        cx.error_spanned_by(
            path,
            "`table` and `tables` cannot both be given: list every table in `tables = [...]`",
        );
    }
    let skip = skip.get();
    let key = key.get();
    if let (Some((path, _)), Some(_)) = (&skip, &key) {
        cx.error_spanned_by(
            path,
            "`skip` has no effect with `key`: `key = ...` replaces the key built from the arguments",
        );
    }
    let self_key = self_key.get();
    if let (Some((path, _)), Some(_)) = (&self_key, &key) {
        cx.error_spanned_by(
            path,
            "`self_key` has no effect with `key`: `key = ...` replaces the whole key",
        );
    }
    Args {
        ttl: ttl.get(),
        tables: table.or(tables).map(|(_, list)| list),
        also: also.get().unwrap_or_default(),
        skip: skip.map(|(_, names)| names).unwrap_or_default(),
        key: key.map(|(_, expr)| expr),
        cache: cache.get(),
        name: name.get(),
        self_key,
        windows: [swr.get(), on_error.get(), ahead.get()],
        tokens: written,
    }
}

/// A duration written as a literal: `"30s"`, `"1m30s"`, or a number of milliseconds.
fn duration_literal(cx: &mut Ctxt, key: &str, expr: &Expr) -> Option<std::time::Duration> {
    let parsed = match attr::ungroup(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => crate::ttl_grammar::parse_duration(&s.value()),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) if i.suffix().is_empty() => crate::ttl_grammar::parse_duration(i.base10_digits()),
        _ => {
            cx.error_spanned_by(
                expr,
                format!("`{key}` takes a duration literal, such as `{key} = \"30s\"`"),
            );
            return None;
        }
    };
    // As the runtime's `stale::MAX_WINDOW`: an entry is kept that long past its TTL.
    const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
    match parsed {
        Ok(d) if d > MAX_WINDOW => {
            cx.error_spanned_by(
                expr,
                format!("`{key}` is at most 30 days: an entry is kept that long past its TTL"),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            cx.error_spanned_by(expr, format!("invalid `{key}` duration: {}", e.reason()));
            None
        }
    }
}

/// The tables the read depends on, checked against (or inferred from) the SQL of `block`:
/// listed tables must be exactly those the SQL reads, plus `also`; none listed: those the
/// SQL reads, plus `also`, or (no SQL in the body) the return type's entity's.
fn read_set(
    cx: &mut Ctxt,
    declared: Option<Tables>,
    also: &[LitStr],
    analysis: &sql::Analysis,
) -> Option<Tables> {
    match declared {
        Some(Tables::Listed(list)) => {
            sql::check_declared(cx, analysis, sql::Role::Reads, &list, also);
            Some(Tables::Listed(
                list.into_iter().chain(also.iter().cloned()).collect(),
            ))
        }
        Some(Tables::Expr(expr)) => {
            if let Some(first) = also.first() {
                cx.error_spanned_by(
                    first,
                    "`also` cannot add to `tables = <expression>`: list those tables in it",
                );
            }
            Some(Tables::Expr(expr))
        }
        None if analysis.complete() && !analysis.reads.is_empty() => {
            let mut tables: Vec<LitStr> = analysis
                .reads
                .iter()
                .map(|(table, span)| LitStr::new(table, *span))
                .collect();
            tables.extend(also.iter().cloned());
            Some(Tables::Listed(tables))
        }
        // A literal the parser rejects: say so rather than guess.
        None if !analysis.unparsed.is_empty() => {
            let (span, why) = analysis.unparsed[0].clone();
            cx.error_at(
                span,
                format!(
                    "#[cached] cannot tell which tables this function reads: {why}. Declare \
                     them: `#[cached(tables = [\"users\", ...])]`"
                ),
            );
            None
        }
        // SQL built at run time: the return type's entity, if it has one (the runtime's
        // error otherwise asks for `tables`).
        // `also` adds to tables: it cannot stand for SQL the macro cannot read.
        None if !also.is_empty() && analysis.complete() => Some(Tables::Listed(also.to_vec())),
        None if !also.is_empty() => {
            cx.error_spanned_by(
                &also[0],
                format!(
                    "`also` adds to the tables of the SQL, and this SQL cannot be read ({}): \
                     give `tables = [...]` as well",
                    analysis.why_incomplete()
                ),
            );
            None
        }
        None => None,
    }
}

/// What a named parameter contributes to a call.
enum ParamUse {
    /// Classified by its type: keyed, or a handle (never keyed) whose transaction state
    /// counts.
    Add,
    /// In `skip(...)`, or `key = ...` is given: only a handle's transaction state counts.
    Probe,
}

/// A checked `#[cached]` function.
struct CachedFn<'a> {
    args: Args,
    item: &'a ItemFn,
    body: Body<'a>,
    output: &'a Type,
    params: Vec<(&'a Ident, &'a syn::PatType, ParamUse)>,
    /// The fields of `self` the body reads: keyed like parameters (`Add`), or, when
    /// `self` is keyed otherwise or skipped, only probed for a handle in a transaction.
    self_fields: (Vec<FieldPath>, ParamUse),
    cache_param: Option<CacheParam<'a>>,
    /// The id of the row the read is of, when its SQL reads one row by id.
    row: Option<TokenStream>,
}

fn check<'a>(cx: &mut Ctxt, mut args: Args, item: &'a ItemFn) -> Option<CachedFn<'a>> {
    let sig = &item.sig;
    let analysis = sql::analyze(&item.block);
    args.tables = read_set(cx, args.tables.take(), &args.also, &analysis);
    let body = body::of(item);
    // A read of one row by id, of the one table it reads: it follows that row.
    // All of its SQL seen: a helper it awaits may read other rows.
    let row = match (&args.tables, &analysis.row_read, &body) {
        (Some(Tables::Listed(list)), Some((table, value)), Some(body))
            if analysis.complete()
                && body.self_name == "self"
                && list.len() == 1
                && list[0].value() == *table =>
        {
            row_arg::param_value(value, sig, &item.block)
        }
        _ => None,
    };
    if body.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            "#[cached] requires an `async fn`: the cache is read and filled asynchronously",
        );
    }
    let output = match body.as_ref().and_then(|b| b.output) {
        Some(ty) => Some(ty),
        None if body.is_none() => None,
        None => {
            cx.error_spanned_by(
                &sig.ident,
                "#[cached] needs a return type: the value to cache, such as \
                 `-> Result<Option<User>, sqlx::Error>`",
            );
            None
        }
    };
    let receiver = args::receiver(sig);

    for skipped in &args.skip {
        if skipped == "self" {
            if receiver.is_none() {
                cx.error_spanned_by(skipped, "cannot skip `self`: this function has no `self`");
            }
        } else if !has_param(sig, skipped) {
            cx.error_spanned_by(
                skipped,
                format!(
                    "cannot skip `{skipped}`: this function has no parameter named `{skipped}`"
                ),
            );
        }
    }
    if let (Some((path, _)), None) = (&args.self_key, receiver) {
        cx.error_spanned_by(
            path,
            "`self_key` keys `self`, and this function has no `self`",
        );
    }

    let mut params = Vec::new();
    for role in args::classify(sig) {
        match role {
            Role::Receiver => {}
            Role::Named(ident, pt) => {
                let skipped = args.key.is_some() || args.skip.iter().any(|s| s == ident);
                params.push((
                    ident,
                    pt,
                    if skipped {
                        ParamUse::Probe
                    } else {
                        ParamUse::Add
                    },
                ));
            }
            Role::Pattern(pt) => {
                if args.key.is_none() {
                    cx.error_spanned_by(
                        &pt.pat,
                        "a pattern parameter cannot be part of the key: bind it to a name, \
                         or give the key yourself with `key = ...`",
                    );
                }
            }
        }
    }

    // `self` is keyed by the fields the body reads, unless the key or `self`'s part of it
    // is given, or `self` is skipped. Either way a field that is a connection is probed:
    // a repository built over `&mut *tx` must not cache what its transaction has not
    // committed, whatever keys it.
    let self_is_keyed =
        args.key.is_none() && args.self_key.is_none() && !args.skip.iter().any(|s| s == "self");
    let mut self_fields = (Vec::new(), ParamUse::Probe);
    if let (Some(_), Some(body)) = (receiver, &body) {
        let reads = receiver::reads(body.stmts, body.self_name);
        if let (true, Some((span, what))) = (self_is_keyed, reads.opaque) {
            cx.error_at(
                span,
                format!(
                    "#[cached] keys the fields of `self` this method reads, and this method \
                     {what}, which may read any of them: say what the result depends on with \
                     `self_key = ...` (such as `self_key = self.tenant_id`), or write \
                     `skip(self)` if it does not depend on `self` at all"
                ),
            );
        }
        self_fields = if self_is_keyed {
            (reads.keyed(), ParamUse::Add)
        } else {
            (reads.all, ParamUse::Probe)
        };
    }

    Some(CachedFn {
        cache_param: args::cache_param(sig),
        args,
        item,
        body: body?,
        output: output?,
        params,
        self_fields,
        row,
    })
}

fn has_param(sig: &syn::Signature, ident: &Ident) -> bool {
    args::classify(sig)
        .iter()
        .any(|role| matches!(role, Role::Named(name, _) if *name == ident))
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let args = parse_args(&mut cx, args);
    let parsed: ItemFn = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(e) => {
            cx.push(syn::Error::new(
                e.span(),
                format!("#[cached] applies to an `async fn` with a body: {e}"),
            ));
            return with_original(cx.check(), item);
        }
    };
    let checked = check(&mut cx, args, &parsed);
    match (cx.check(), checked) {
        (Ok(()), Some(f)) => generate(&f),
        (checked, _) => with_original(checked, item),
    }
}

// Input:
//
//     #[cached(ttl = "60s")]
//     async fn find_user(&self, pool: &SqlitePool, id: i64) -> Result<Option<User>, sqlx::Error> {
//         #![inner attributes]
//         statements reading self.tenant
//     }
//
// Output:
//
//     async fn find_user(&self, pool: &SqlitePool, id: i64) -> Result<Option<User>, sqlx::Error> {
//         #![inner attributes]
//         static __SCOPE: KeyScope = KeyScope::generated(None, "<hash of signature and body>");
//         assert_output::<Result<Option<User>, sqlx::Error>>();   // one error, at the type
//         let __cache: &Cache = global();
//         let __ttl: Ttl = Ttl::For(Duration::new(60, 0));
//         let __tables: &[&str] = <Result<Option<User>, sqlx::Error> as EntityTables>::TABLES;
//         let __call = {
//             let mut __args = KeyArgs::new();
//             __args.add((&&&&&Arg(&pool)).__param());          // a handle, by its type
//             __args.add((&&&&&Arg(&id)).__param());            // keyed: `Serialize`
//             __args.add((&&&&&Arg(&self.tenant)).__param());   // read by the body
//             __args.finish(__cache, __SCOPE.instance(type_name_of_val(&|| ())))
//         };
//         if let Some(hit) = (&Hit::<O>::new()).hit(__cache, &__call, &__ttl) { return hit; }
//         (&Hit::<O>::new()).load(__cache, __call, __tables, __ttl, move || async move {
//             <fake return edge>
//             statements
//         }).await
//     }
fn generate(f: &CachedFn) -> TokenStream {
    let private = Private;
    // Mixed-site hygiene: the body (moved inside) never sees these, whatever its names.
    let cache_var = local("__cache");
    let ttl_var = local("__ttl");
    let tables_var = local("__tables");
    let call_var = local("__call");
    let args_var = local("__args");
    let ItemFn { sig, block, .. } = f.item;
    let stmts = f.body.stmts;
    let output = f.output;

    let name = match &f.args.name {
        Some(name) => quote!(::core::option::Option::Some(#name)),
        None => quote!(::core::option::Option::None),
    };
    let code = fingerprint::of(&f.args.tokens, &quote!(#sig #block));

    // The hit path borrows the cache; only a miss, which runs the body, owns a clone.
    let CacheBinding {
        borrow: cache,
        own: own_cache,
    } = bind_cache(f.args.cache.as_ref(), f.cache_param);

    let ttl = match &f.args.ttl {
        Some(tokens) => tokens.clone(),
        None => quote! {{
            #[allow(unused_imports)]
            use #private::{EntityTtl as _, PlainTtl as _};
            #private::ttl_or_default(
                #cache_var,
                (&#private::EntityProbe::<#output>::new()).entity_ttl(),
            )
        }},
    };

    let tables = match &f.args.tables {
        Some(Tables::Listed(list)) => {
            let tags = sql::tag_variants(list);
            quote!(&[#(#tags),*])
        }
        Some(Tables::Expr(expr)) => {
            quote!(::core::convert::AsRef::<[&'static ::core::primitive::str]>::as_ref(&#expr))
        }
        None => quote_spanned! {output.span()=>
            <#output as #private::EntityTables>::TABLES
        },
    };

    // Each parameter is classified by its type; a missing `Serialize` is reported at it.
    let classify = |value: TokenStream, at: &dyn ToTokens, method: TokenStream| {
        let arg = attr::reference_spanning(at, value);
        let (first, _) = attr::span_range(at);
        quote_spanned!(first=> #args_var.#method((&&&&&#private::Arg(#arg)).__param());)
    };
    let method = |use_: &ParamUse| match use_ {
        ParamUse::Add => quote!(add),
        ParamUse::Probe => quote!(probe),
    };
    let mut parts: Vec<TokenStream> = f
        .params
        .iter()
        .map(|(ident, param, use_)| classify(ident.to_token_stream(), param, method(use_)))
        .collect();
    let (fields, use_) = &f.self_fields;
    for field in fields {
        parts.push(classify(field.to_token_stream(), field, method(use_)));
    }
    for value in f
        .args
        .key
        .iter()
        .chain(f.args.self_key.as_ref().map(|(_, e)| e))
    {
        let reference = attr::reference_spanning(value, value.to_token_stream());
        let (first, _) = attr::span_range(value);
        parts.push(quote_spanned!(first=> #args_var.push(#reference);));
    }

    if f.args.windows.iter().any(Option::is_some) {
        let each = f.args.windows.iter().map(|w| match w {
            Some(d) => {
                let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
                quote!(::core::option::Option::Some(::core::time::Duration::new(#secs, #nanos)))
            }
            None => quote!(::core::option::Option::None),
        });
        parts.push(quote!(#args_var.windows(#(#each),*);));
    }
    if let Some(value) = &f.row {
        parts.push(quote! {{
            #[allow(unused_imports)]
            use #private::{KnownRow as _, UnknownRow as _};
            #args_var.row((&#private::RowProbe(&(#value))).row());
        }});
    }

    let fake_return = fake_return_edge(output);
    let loader = quote! {
        move || async move {
            #fake_return
            #(#stmts)*
        }
    };
    let hit_var = local("__hit");

    f.body.emit(
        f.item,
        quote! {
                static __SCOPE: #private::KeyScope = #private::KeyScope::generated(#name, #code);
                #private::assert_output::<#output>();
                #cache
                let #ttl_var: #private::Ttl = #ttl;
                let #tables_var: &[&::core::primitive::str] = #tables;
                let #call_var = {
                    #[allow(unused_imports)]
                    use #private::{
                        AcquireParam as _, ConnectionParam as _, ExecutorParam as _,
                        HandleParam as _, KeyedParam as _,
                    };
                    #[allow(unused_mut)]
                    let mut #args_var = #private::KeyArgs::new();
                    #(#parts)*
                    #args_var.finish(
                        #cache_var,
                        __SCOPE.instance(::core::any::type_name_of_val(&|| ())),
                    )
                };
                #[allow(unused_imports)]
                use #private::{CachedHit as _, NoHit as _};
                // An in-memory hit is answered here, in the function's own first poll, before
                // the load's future is built: a hit never creates, moves or drops it.
                if let ::core::option::Option::Some(#hit_var) = (&#private::Hit::<#output>::new())
                    .hit(#cache_var, &#call_var, &#ttl_var)
                {
                    return #hit_var;
                }
                #own_cache
                (&#private::Hit::<#output>::new())
                    .load(#cache_var, #call_var, #tables_var, #ttl_var, #loader)
                    .await
        },
    )
}

#[cfg(test)]
mod tests {
    use quote::quote;

    const ITEM: &str =
        "async fn find(pool: &SqlitePool, id: i64) -> Result<Option<User>, E> { body }";

    fn expand(args: &str) -> String {
        let item: proc_macro2::TokenStream = ITEM.parse().unwrap();
        super::expand(args.parse().unwrap(), item).to_string()
    }

    #[test]
    fn expands_to_one_function() {
        let out = expand("ttl = \"60s\"");
        let item: syn::ItemFn = syn::parse_str(&out).unwrap();
        assert_eq!(item.sig.ident, "find");
        assert!(out.contains("Duration :: new (60u64 , 0u32)"), "{out}");
        // Every parameter is classified by its type, none by its name.
        assert!(
            out.contains("__private :: Arg (& (id))) . __param ())"),
            "{out}"
        );
        assert!(
            out.contains("__private :: Arg (& (pool))) . __param ())"),
            "{out}"
        );
        assert!(!out.contains("probe"), "{out}");
    }

    /// The code fingerprint an expansion gives `KeyScope::generated`.
    fn code_of(out: &str) -> String {
        let at = out.find("KeyScope :: generated (").expect("a key scope");
        let rest = &out[at..];
        let start = rest.find(", \"").expect("the code literal") + 3;
        rest[start..start + 16].to_string()
    }

    /// Mechanism: the attribute is part of the fingerprint. Fixing a TTL or the tables
    /// must give new keys: a remote backend still holds the entries stored under the old
    /// ones, with their old expiry (`ttl = true`: never) and their old table tags.
    #[test]
    fn the_attribute_is_part_of_the_key_scope() {
        let forever = code_of(&expand("ttl = true, table = \"users\""));
        assert_eq!(forever, code_of(&expand("ttl = true, table = \"users\"")));
        assert_ne!(
            forever,
            code_of(&expand("ttl = \"60s\", table = \"users\""))
        );
        assert_ne!(
            forever,
            code_of(&expand("ttl = true, tables = [\"users\", \"orgs\"]"))
        );
    }

    fn expand_method(args: &str, body: &str) -> String {
        let item: proc_macro2::TokenStream =
            format!("async fn find(&self, id: i64) -> Result<i64, E> {{ {body} }}")
                .parse()
                .unwrap();
        super::expand(args.parse().unwrap(), item).to_string()
    }

    #[test]
    fn the_fields_of_self_the_body_reads_are_keyed() {
        let out = expand_method("table = \"t\"", "Ok(self.tenant + self.config.limit)");
        assert!(out.contains("Arg (& (self . tenant))"), "{out}");
        assert!(out.contains("Arg (& (self . config . limit))"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
        // A method call on `self` could read anything: an error, unless told.
        let out = expand_method("table = \"t\"", "self.helper()");
        assert!(
            out.contains("compile_error") && out.contains("self_key"),
            "{out}"
        );
        let out = expand_method("table = \"t\", skip(self)", "self.helper()");
        assert!(!out.contains("compile_error"), "{out}");
        let out = expand_method("table = \"t\", self_key = self.tenant", "self.helper()");
        assert!(
            !out.contains("compile_error") && out.contains("push (& (self . tenant))"),
            "{out}"
        );
    }

    #[test]
    fn malformed_arguments_give_errors_not_panics() {
        for args in [
            "ttl =",
            "ttl",
            ",,",
            "skip",
            "skip = x",
            "skip(1)",
            "tables = [1, 2]",
            "table = \"a\" table = \"b\"",
            "key",
            "name = 5",
            "ttl = \"\\u{0}\"",
            "ttl = \"9999999999999999999999999y\"",
            "ttl = 99999999999999999999999999999999999999999",
            "a::b = 1",
        ] {
            let out = expand(args);
            assert!(out.contains("compile_error"), "{args}: {out}");
            assert!(out.contains("async fn find"), "original item kept: {args}");
        }
    }

    #[test]
    fn a_non_function_item_is_an_error() {
        let out = super::expand(
            quote!(),
            quote!(
                struct S;
            ),
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
    }
}
