//! `#[cached(...)]`: attribute parsing, checks, and the rewrite of the `async fn`.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, LitStr, Path, ReturnType, Token, Type};

use crate::args::{self, CacheParam, Role, TxKind};
use crate::attr::{self, Attr};
use crate::ctxt::Ctxt;
use crate::{fingerprint, ttl};

const MACRO: &str = "#[cached]";
const KEYS: &[&str] = &["ttl", "table", "tables", "skip", "key", "cache", "name"];

/// The checked attribute arguments.
#[derive(Default)]
struct Args {
    /// Tokens evaluating to a `Ttl`; `None`: the entity's or the settings' default.
    ttl: Option<TokenStream>,
    /// Explicit tables; `None`: inferred from the return type's entity.
    tables: Option<Vec<LitStr>>,
    skip: Vec<Ident>,
    key: Option<Expr>,
    cache: Option<Expr>,
    name: Option<LitStr>,
}

fn parse_args(cx: &mut Ctxt, tokens: TokenStream) -> Args {
    let mut ttl = Attr::none(MACRO, "ttl");
    let mut table = Attr::none(MACRO, "table");
    let mut tables = Attr::none(MACRO, "tables");
    let mut skip: Attr<(Path, Vec<Ident>)> = Attr::none(MACRO, "skip");
    let mut key: Attr<(Path, Expr)> = Attr::none(MACRO, "key");
    let mut cache = Attr::none(MACRO, "cache");
    let mut name = Attr::none(MACRO, "name");

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
                    table.set(cx, &meta.path, (meta.path.clone(), vec![lit]));
                }
            }
            // #[cached(tables = ["users", "posts"])]
            "tables" => {
                let expr: Expr = meta.value()?.parse()?;
                let list = attr::table_list(cx, &expr);
                tables.set(cx, &meta.path, (meta.path.clone(), list));
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
    Args {
        ttl: ttl.get(),
        tables: table.or(tables).map(|(_, list)| list),
        skip: skip.map(|(_, names)| names).unwrap_or_default(),
        key: key.map(|(_, expr)| expr),
        cache: cache.get(),
        name: name.get(),
    }
}

/// A parameter that is part of the key.
struct Keyed<'a> {
    ident: &'a Ident,
    param: &'a syn::PatType,
}

/// A checked `#[cached]` function.
struct CachedFn<'a> {
    args: Args,
    item: &'a ItemFn,
    output: &'a Type,
    keyed: Vec<Keyed<'a>>,
    type_params: Vec<&'a Ident>,
    cache_param: Option<CacheParam<'a>>,
}

fn check<'a>(cx: &mut Ctxt, args: Args, item: &'a ItemFn) -> Option<CachedFn<'a>> {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            "#[cached] requires an `async fn`: the cache is read and filled asynchronously",
        );
    }
    let output = match &sig.output {
        ReturnType::Type(_, ty) => Some(&**ty),
        ReturnType::Default => {
            cx.error_spanned_by(
                &sig.ident,
                "#[cached] needs a return type: the value to cache, such as \
                 `-> Result<Option<User>, sqlx::Error>`",
            );
            None
        }
    };

    for skipped in &args.skip {
        if skipped != "self" && !has_param(sig, skipped) {
            cx.error_spanned_by(
                skipped,
                format!(
                    "cannot skip `{skipped}`: this function has no parameter named `{skipped}`"
                ),
            );
        }
    }

    let roles = args::classify(sig);
    let mut keyed = Vec::new();
    let mut cache_param = None;
    for role in &roles {
        match role {
            Role::Receiver | Role::Database => {}
            Role::Cache(ident) => {
                if cache_param.is_none() {
                    cache_param = *ident;
                }
            }
            Role::Keyed(ident, param) => {
                if args.key.is_none() && !args.skip.iter().any(|s| s == *ident) {
                    keyed.push(Keyed { ident, param });
                }
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
    Some(CachedFn {
        type_params: args::keyed_type_params(sig),
        args,
        item,
        output: output?,
        keyed,
        cache_param,
    })
}

fn has_param(sig: &syn::Signature, ident: &Ident) -> bool {
    sig.inputs.iter().any(|arg| match arg {
        syn::FnArg::Typed(pt) => matches!(&*pt.pat, syn::Pat::Ident(p) if p.ident == *ident),
        syn::FnArg::Receiver(_) => false,
    })
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
            return with_original(cx, item);
        }
    };
    let checked = check(&mut cx, args, &parsed);
    match (cx.check(), checked) {
        (Ok(()), Some(f)) => generate(&f),
        (result, _) => {
            let mut cx = Ctxt::default();
            if let Err(e) = result {
                cx.push(e);
            }
            with_original(cx, item)
        }
    }
}

/// The errors next to the untouched item, so the rest of the crate still type-checks
/// against the function as written.
pub(crate) fn with_original(cx: Ctxt, item: TokenStream) -> TokenStream {
    let errors = cx.check().err().map(syn::Error::into_compile_error);
    quote!(#errors #item)
}

// Input:
//
//     #[cached(ttl = "60s")]
//     async fn find_user(pool: &SqlitePool, id: i64) -> Result<Option<User>, sqlx::Error> { body }
//
// Output:
//
//     async fn find_user(pool: &SqlitePool, id: i64) -> Result<Option<User>, sqlx::Error> {
//         static __SCOPE: KeyScope = KeyScope::with_code(concat!(module_path!(), "::find_user"), "<hash>");
//         let __cache: &Cache = global();
//         let __ttl: Ttl = Ttl::For(Duration::new(60, 0));
//         let __tables: &[&str] = <Result<Option<User>, sqlx::Error> as EntityTables>::TABLES;
//         let __key = { let mut __args = KeyArgs::new(); __args.push(&id); __args.finish(__cache, &__SCOPE) };
//         load(__cache, __key, __tables, __ttl, move || async move { <fake return edge> body }).await
//     }
//
// With a parameter `tx` whose type is named `Transaction`, whether it is a transaction
// (by its type) is taken first and the load goes through `load_in`, which just runs the
// body when it is:
//
//         let __in_transaction = false | (&TxRead(&*tx)).in_transaction();
//         load_in(__cache, __key, __tables, __ttl, __in_transaction, move || async move { body }).await
fn generate(f: &CachedFn) -> TokenStream {
    let private = quote!(::cache_runtime::__private);
    // Mixed-site hygiene: the body (moved inside) never sees these, whatever its names.
    let cache_var = local("__cache");
    let ttl_var = local("__ttl");
    let tables_var = local("__tables");
    let key_var = local("__key");
    let args_var = local("__args");
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = f.item;
    let output = f.output;

    let identity = match &f.args.name {
        Some(name) => name.to_token_stream(),
        None => {
            let fn_name = sig.ident.unraw().to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
        }
    };
    let code = fingerprint::of(sig, block);

    let cache = match (&f.args.cache, f.cache_param) {
        (Some(expr), _) => quote_spanned!(expr.span()=> #expr),
        (None, Some(param)) => quote!(#param),
        (None, None) => quote!(#private::global()),
    };

    let ttl = match &f.args.ttl {
        Some(tokens) => tokens.clone(),
        None => quote! {{
            #[allow(unused_imports)]
            use #private::{EntityTtl as _, PlainTtl as _};
            #private::ttl_or_default(
                #cache_var,
                (&#private::Probe::<#output>::new()).entity_ttl(),
            )
        }},
    };

    let tables = match &f.args.tables {
        Some(list) => quote!(&[#(#list),*]),
        None => quote_spanned! {output.span()=>
            <#output as #private::EntityTables>::TABLES
        },
    };

    let key_parts: Vec<TokenStream> = match &f.args.key {
        // A missing `Serialize` is reported at the key expression or the parameter.
        Some(expr) => {
            let value = attr::reference_spanning(expr, expr.to_token_stream());
            let (first, _) = attr::span_range(expr);
            vec![quote_spanned!(first=> #args_var.push(#value);)]
        }
        None => f
            .keyed
            .iter()
            .map(|k| {
                let value = attr::reference_spanning(k.param, k.ident.to_token_stream());
                let (first, _) = attr::span_range(k.param);
                quote_spanned!(first=> #args_var.push(#value);)
            })
            .chain(
                f.type_params
                    .iter()
                    .map(|t| quote!(#args_var.push(::core::any::type_name::<#t>());)),
            )
            .collect(),
    };

    // A read through a transaction runs uncached (`__private::load_in`); whether a
    // parameter named `Transaction` is one is decided by its type, before the body takes it.
    let transactions = args::transactions(sig);
    let in_tx_var = local("__in_transaction");
    let (in_tx, in_tx_arg, load_fn, uncached) = if transactions.is_empty() {
        (
            TokenStream::new(),
            TokenStream::new(),
            quote!(load),
            quote!(false),
        )
    } else {
        let probes = transactions.iter().map(|tx| {
            let ident = tx.ident;
            let value = match tx.kind {
                TxKind::Value => quote!(&#ident),
                TxKind::Ref | TxKind::RefMut => quote!(&*#ident),
            };
            quote!(| (&#private::TxRead(#value)).in_transaction())
        });
        (
            quote! {
                let #in_tx_var: ::core::primitive::bool = {
                    #[allow(unused_imports)]
                    use #private::{OtherRead as _, TransactionRead as _};
                    false #(#probes)*
                };
            },
            quote!(#in_tx_var,),
            quote!(load_in),
            quote!(#in_tx_var),
        )
    };

    let fake_return = fake_return_edge(output);
    // Spanned over the return type: an output that is not cacheable is reported there.
    let load = {
        let (first, last) = attr::span_range(output);
        let mut call_args = Group::new(
            Delimiter::Parenthesis,
            quote! {
                #cache_var, #key_var, #tables_var, #ttl_var, #in_tx_arg move || async move {
                    #fake_return
                    #block
                }
            },
        );
        call_args.set_span(last);
        let awaited = quote_spanned!(last=> .await);
        quote_spanned!(first=> ::cache_runtime::__private::#load_fn #call_args #awaited)
    };
    // An in-memory hit is answered here, in the function's own first poll, before the
    // load's future is built: a hit never creates, moves or drops it.
    let hit_var = local("__hit");
    let hit = quote! {
        #[allow(unused_imports)]
        use #private::{CachedHit as _, NoHit as _};
        if let ::core::option::Option::Some(#hit_var) = (&#private::Hit::<#output>::new())
            .hit(#cache_var, &#key_var, &#ttl_var, #uncached)
        {
            return #hit_var;
        }
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            static __SCOPE: #private::KeyScope = #private::KeyScope::with_code(#identity, #code);
            let #cache_var: &#private::Cache = #cache;
            let #ttl_var: #private::Ttl = #ttl;
            let #tables_var: &[&::core::primitive::str] = #tables;
            let #key_var = {
                #[allow(unused_mut)]
                let mut #args_var = #private::KeyArgs::new();
                #(#key_parts)*
                #args_var.finish(#cache_var, &__SCOPE)
            };
            #in_tx
            #hit
            #load
        }
    }
}

/// An unreachable `return` of the declared type at the top of the moved body, so that the
/// body's `?` and `return` are typed against the function's return type (and type errors
/// point at it), as `tracing-attributes` does.
pub(crate) fn fake_return_edge(output: &Type) -> TokenStream {
    let fake = local("__fake_return");
    quote_spanned! {output.span()=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::let_unit_value,
            clippy::unreachable,
            clippy::let_with_type_underscore,
            clippy::empty_loop
        )]
        if false {
            let #fake: #output = loop {};
            return #fake;
        }
    }
}

/// A generated local variable, invisible to the user's code (`Span::mixed_site`).
pub(crate) fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
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
        assert!(out.contains("push (& (id))"), "only `id` is keyed: {out}");
        assert!(!out.contains("push (& (pool))"), "{out}");
    }

    #[test]
    fn a_transaction_is_not_keyed_and_is_probed() {
        let item: proc_macro2::TokenStream =
            "async fn find(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<i64, E> { body }"
                .parse()
                .unwrap();
        let out = super::expand("table = \"users\"".parse().unwrap(), item).to_string();
        assert!(!out.contains("push (& (tx))"), "{out}");
        assert!(out.contains("TxRead (& * tx)"), "{out}");
        assert!(out.contains("__private :: load_in"), "{out}");
        assert!(
            !expand("ttl = \"60s\"").contains("load_in"),
            "no transaction, plain load"
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
