//! `#[invalidates(...)]`: attribute parsing, checks, and the rewrite of the `async fn`.

use proc_macro2::{Ident, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, LitStr, ReturnType, Token, Type};

use crate::args::{self, Role, TxKind, TxParam};
use crate::attr::{self, Attr};
use crate::cached::{fake_return_edge, local, with_original};
use crate::ctxt::Ctxt;

const MACRO: &str = "#[invalidates]";
const KEYS: &str = "`tables`, `table`, `cache`, or entity types such as `User`";

/// A table to invalidate.
enum Target {
    /// `tables = ["users"]`.
    Name(LitStr),
    /// `User`: `<User as CacheEntity>::TABLE`.
    Entity(Box<Type>),
}

struct Args {
    targets: Vec<Target>,
    cache: Option<Expr>,
}

// #[invalidates(User, Post)], #[invalidates(tables = ["users"])], #[invalidates(table = "users")],
// #[invalidates(User, cache = &self.cache)]
fn parse_args(cx: &mut Ctxt, input: ParseStream) -> syn::Result<Args> {
    let mut table: Attr<Vec<LitStr>> = Attr::none(MACRO, "table");
    let mut tables: Attr<Vec<LitStr>> = Attr::none(MACRO, "tables");
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
                "tables" => {
                    let list = attr::table_list(cx, &value);
                    tables.set(cx, &key, list);
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

    let given = table.is_set() || tables.is_set() || !entities.is_empty();
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
    if !given && !unknown {
        cx.error_at(
            input.span(),
            "#[invalidates] needs the tables the function writes: \
             `#[invalidates(User)]` (an entity type) or `#[invalidates(tables = [\"users\"])]`",
        );
    }
    Ok(Args {
        targets,
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
            return with_original(cx, item);
        }
    };
    if parsed.sig.asyncness.is_none() {
        cx.error_spanned_by(
            parsed.sig.fn_token,
            "#[invalidates] requires an `async fn`: invalidation runs after the write, asynchronously",
        );
    }
    match (cx.check(), args) {
        (Ok(()), Some(args)) => generate(&args, &parsed),
        (result, _) => {
            let mut cx = Ctxt::default();
            if let Err(e) = result {
                cx.push(e);
            }
            with_original(cx, item)
        }
    }
}

// Input:
//
//     #[invalidates(User)]
//     async fn rename(pool: &SqlitePool, id: i64, name: &str) -> sqlx::Result<u64> { body }
//
// Output:
//
//     async fn rename(pool: &SqlitePool, id: i64, name: &str) -> sqlx::Result<u64> {
//         let __output: sqlx::Result<u64> = async move { <fake return edge> body }.await;
//         if (&Outcome(&__output)).succeeded() {      // `Ok`, or any non-`Result` output
//             invalidate(global(), &[<User as CacheEntity>::TABLE]).await;
//         }
//         __output
//     }
fn generate(args: &Args, item: &ItemFn) -> TokenStream {
    let private = quote!(::cache_runtime::__private);
    let cache_var = local("__cache");
    let output_var = local("__output");
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let output = match &sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => quote!(()),
    };
    let fake_return = match &sig.output {
        ReturnType::Type(_, ty) => fake_return_edge(ty),
        ReturnType::Default => TokenStream::new(),
    };

    let cache_param = args::classify(sig).into_iter().find_map(|r| match r {
        Role::Cache(param) => param,
        _ => None,
    });
    // A cache borrowed from the arguments (`cache = &self.cache`, `cache: Cache`) is cloned
    // (an `Arc` increment) before the body runs: the body may take the arguments by value
    // or mutably (`&mut self`), which a borrow held across it would forbid.
    let owned = local("__cache_owned");
    let (before, cache) = match (&args.cache, cache_param) {
        (Some(expr), _) => (
            quote_spanned! {expr.span()=>
                let #owned: #private::Cache = <#private::Cache as ::core::clone::Clone>::clone(#expr);
            },
            quote!(&#owned),
        ),
        (None, Some(param)) if param.by_value => (
            quote! {
                let #owned: #private::Cache = <#private::Cache as ::core::clone::Clone>::clone(#param);
            },
            quote!(&#owned),
        ),
        (None, Some(param)) => (TokenStream::new(), quote!(#param)),
        (None, None) => (TokenStream::new(), quote!(#private::global())),
    };

    let tables = args.targets.iter().map(|t| match t {
        Target::Name(lit) => lit.to_token_stream(),
        Target::Entity(ty) => quote_spanned! {ty.span()=>
            <#ty as #private::CacheEntity>::TABLE
        },
    });

    let transactions = args::transactions(sig);
    if !transactions.is_empty() {
        // The transactions are rebound inside with their `mut`: the parameters lose it.
        let mut sig = sig.clone();
        for arg in &mut sig.inputs {
            if let syn::FnArg::Typed(pt) = arg
                && let syn::Pat::Ident(pi) = &mut *pt.pat
                && transactions
                    .iter()
                    .any(|tx| *tx.ident == pi.ident && tx.kind != TxKind::Ref)
            {
                pi.mutability = None;
            }
        }
        return generate_in_transaction(
            &transactions,
            quote!(#(#attrs)* #vis #sig),
            quote!(#before),
            cache,
            quote!(&[#(#tables),*]),
            &output,
            quote!(#fake_return #block),
        );
    }

    quote! {
        #(#attrs)*
        #vis #sig {
            #before
            let #output_var: #output = async move {
                #fake_return
                #block
            }
            .await;
            {
                #[allow(unused_imports)]
                use #private::{AnyOutcome as _, ResultOutcome as _};
                if (&#private::Outcome(&#output_var)).succeeded() {
                    let #cache_var: &#private::Cache = #cache;
                    #private::invalidate(#cache_var, &[#(#tables),*]).await;
                }
            }
            #output_var
        }
    }
}

// With parameters whose type is named `Transaction`: a cache `Transaction` gets the tables
// registered (invalidated after its COMMIT) instead of an immediate invalidation; which
// parameters are one is decided by their types (`__private::TxWrite`).
//
// Input:
//
//     #[invalidates(User)]
//     async fn rename(tx: &mut Transaction<'_, Postgres>, id: i64) -> sqlx::Result<u64> { body }
//
// Output:
//
//     async fn rename(tx: &mut Transaction<'_, Postgres>, id: i64) -> sqlx::Result<u64> {
//         let __tables: &[&str] = &[<User as CacheEntity>::TABLE];
//         let __deferred_early = false;          // `| (&mut TxWrite(&mut tx)).defer(..)` per by-value one
//         let __output: sqlx::Result<u64> = {
//             let tx = &mut *tx;                 // the body borrows, so `tx` is usable after it
//             async move { <fake return edge> body }.await
//         };
//         if (&Outcome(&__output)).succeeded()
//             && !(__deferred_early | (&mut TxWrite(&mut *tx)).defer(__tables))
//         {
//             invalidate(global(), __tables).await;
//         }
//         __output
//     }
//
// A transaction taken by value is registered before the body runs (the body may commit it,
// which then invalidates): registering a table that ends up unwritten costs one extra miss.
fn generate_in_transaction(
    transactions: &[TxParam],
    signature: TokenStream,
    before: TokenStream,
    cache: TokenStream,
    tables: TokenStream,
    output: &TokenStream,
    body: TokenStream,
) -> TokenStream {
    let private = quote!(::cache_runtime::__private);
    let cache_var = local("__cache");
    let output_var = local("__output");
    let tables_var = local("__tables");
    let early_var = local("__deferred_early");

    let by_value: Vec<&TxParam> = transactions
        .iter()
        .filter(|tx| tx.kind == TxKind::Value)
        .collect();
    let by_ref: Vec<&TxParam> = transactions
        .iter()
        .filter(|tx| tx.kind == TxKind::RefMut)
        .collect();

    let rebinds = by_value.iter().map(|tx| {
        let ident = tx.ident;
        quote! {
            #[allow(unused_mut)]
            let mut #ident = #ident;
        }
    });
    let early = by_value.iter().map(|tx| {
        let ident = tx.ident;
        quote!(| (&mut #private::TxWrite(&mut #ident)).defer(#tables_var))
    });
    let reborrows = by_ref.iter().map(|tx| {
        let ident = tx.ident;
        let mutability = tx.mutability;
        quote! {
            #[allow(unused_mut)]
            let #mutability #ident = &mut *#ident;
        }
    });
    let late = by_ref.iter().map(|tx| {
        let ident = tx.ident;
        quote!(| (&mut #private::TxWrite(&mut *#ident)).defer(#tables_var))
    });

    quote! {
        #signature {
            #before
            let #tables_var: &[&::core::primitive::str] = #tables;
            #(#rebinds)*
            let #early_var: ::core::primitive::bool = {
                #[allow(unused_imports)]
                use #private::{CacheTxWrite as _, OtherTxWrite as _};
                false #(#early)*
            };
            let #output_var: #output = {
                #(#reborrows)*
                async move {
                    #body
                }
                .await
            };
            {
                #[allow(unused_imports)]
                use #private::{
                    AnyOutcome as _, CacheTxWrite as _, OtherTxWrite as _, ResultOutcome as _,
                };
                if (&#private::Outcome(&#output_var)).succeeded() && !(#early_var #(#late)*) {
                    let #cache_var: &#private::Cache = #cache;
                    #private::invalidate(#cache_var, #tables_var).await;
                }
            }
            #output_var
        }
    }
}
