//! Which parameters of a cached function are part of its key.
//!
//! Decided syntactically, from the signature alone: `self`, SQLx pools, connections,
//! transactions and executors (by the last segment of their type's path, `impl
//! Executor`/`impl Acquire`, or a generic parameter bounded by `Executor`/`Acquire`), the
//! `&Cache`, and parameters named in `skip(...)` are left out; every other parameter is
//! keyed and must be `Serialize`.

use std::collections::BTreeSet;

use syn::{
    FnArg, GenericParam, Ident, Pat, PatIdent, PatType, Signature, Type, TypeParamBound,
    WherePredicate,
};

/// Types (last path segment) that are database handles, never keyed.
const DATABASE_HANDLES: &[&str] = &[
    "Pool",
    "PgPool",
    "SqlitePool",
    "MySqlPool",
    "AnyPool",
    "PoolConnection",
    "Transaction",
    "PgConnection",
    "SqliteConnection",
    "MySqlConnection",
    "AnyConnection",
    "PgListener",
];

/// Traits (last path segment) whose implementors are database handles.
const EXECUTOR_TRAITS: &[&str] = &["Executor", "Acquire"];

pub(crate) enum Role<'a> {
    /// `self`, `&self`, `&mut self`, `self: Arc<Self>`.
    Receiver,
    /// A pool, connection, transaction or executor.
    Database,
    /// A `&Cache` (or a `Cache` by value); `None` for a pattern such as `_`.
    Cache(Option<CacheParam<'a>>),
    /// Part of the key unless skipped.
    Keyed(&'a Ident, &'a PatType),
    /// A destructuring pattern (or `_`) of a type that would be keyed.
    Pattern(&'a PatType),
}

/// The parameter a generated function takes its cache from.
#[derive(Clone, Copy)]
pub(crate) struct CacheParam<'a> {
    pub(crate) ident: &'a Ident,
    /// `cache: Cache` rather than `cache: &Cache`: used as `&cache`.
    pub(crate) by_value: bool,
}

impl quote::ToTokens for CacheParam<'_> {
    /// An expression of type `&Cache`.
    fn to_tokens(&self, tokens: &mut proc_macro2::TokenStream) {
        if self.by_value {
            syn::token::And::default().to_tokens(tokens);
        }
        self.ident.to_tokens(tokens);
    }
}

/// Classifies every parameter of `sig`, in order.
pub(crate) fn classify(sig: &Signature) -> Vec<Role<'_>> {
    let executors = executor_generics(sig);
    sig.inputs
        .iter()
        .map(|arg| match arg {
            FnArg::Receiver(_) => Role::Receiver,
            FnArg::Typed(pt) => typed(pt, &executors),
        })
        .collect()
}

fn typed<'a>(pt: &'a PatType, executors: &BTreeSet<String>) -> Role<'a> {
    let ident = match &*pt.pat {
        Pat::Ident(PatIdent { ident, .. }) if ident != "self" => Some(ident),
        Pat::Ident(_) => return Role::Receiver,
        _ => None,
    };
    match handle_kind(&pt.ty, executors) {
        Some(Handle::Database) => Role::Database,
        Some(Handle::Cache) => Role::Cache(ident.map(|ident| CacheParam {
            ident,
            by_value: !matches!(strip_groups(&pt.ty), Type::Reference(_)),
        })),
        None => match ident {
            Some(ident) => Role::Keyed(ident, pt),
            None => Role::Pattern(pt),
        },
    }
}

enum Handle {
    Database,
    Cache,
}

fn strip_groups(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Paren(p) => ty = &p.elem,
            Type::Group(g) => ty = &g.elem,
            _ => return ty,
        }
    }
}

/// Looks through references, parentheses and invisible groups.
fn handle_kind(ty: &Type, executors: &BTreeSet<String>) -> Option<Handle> {
    match ty {
        Type::Reference(r) => handle_kind(&r.elem, executors),
        Type::Paren(p) => handle_kind(&p.elem, executors),
        Type::Group(g) => handle_kind(&g.elem, executors),
        Type::ImplTrait(it) => it
            .bounds
            .iter()
            .any(is_executor_bound)
            .then_some(Handle::Database),
        Type::Path(tp) if tp.qself.is_none() => {
            let last = tp.path.segments.last()?;
            let name = last.ident.to_string();
            if name == "Cache" {
                Some(Handle::Cache)
            } else if DATABASE_HANDLES.contains(&name.as_str())
                || (tp.path.segments.len() == 1 && executors.contains(&name))
            {
                Some(Handle::Database)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn is_executor_bound(bound: &TypeParamBound) -> bool {
    match bound {
        TypeParamBound::Trait(t) => t
            .path
            .segments
            .last()
            .is_some_and(|s| EXECUTOR_TRAITS.iter().any(|e| s.ident == e)),
        _ => false,
    }
}

/// Generic type parameters bounded by `Executor` or `Acquire`, inline or in `where`.
fn executor_generics(sig: &Signature) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for param in &sig.generics.params {
        if let GenericParam::Type(tp) = param
            && tp.bounds.iter().any(is_executor_bound)
        {
            found.insert(tp.ident.to_string());
        }
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        for predicate in &where_clause.predicates {
            if let WherePredicate::Type(pt) = predicate
                && pt.bounds.iter().any(is_executor_bound)
                && let Type::Path(path) = &pt.bounded_ty
                && let Some(ident) = path.path.get_ident()
            {
                found.insert(ident.to_string());
            }
        }
    }
    found
}

/// Generic type parameters that are not executors: their concrete types are mixed into
/// the key, since one function body serves every instantiation.
pub(crate) fn keyed_type_params(sig: &Signature) -> Vec<&Ident> {
    let executors = executor_generics(sig);
    sig.generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(tp) if !executors.contains(&tp.ident.to_string()) => Some(&tp.ident),
            _ => None,
        })
        .collect()
}

/// A parameter whose type is named `Transaction` (`&mut Transaction<'_, DB>`, by value, any
/// path). Whether it is `cache_runtime::Transaction` is left to the type system: generated
/// code dispatches on its type (`__private::TxRead`, `__private::TxWrite`).
pub(crate) struct TxParam<'a> {
    pub(crate) ident: &'a Ident,
    /// The binding's `mut`, if any.
    pub(crate) mutability: Option<syn::token::Mut>,
    pub(crate) kind: TxKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxKind {
    /// `&mut Transaction<..>`.
    RefMut,
    /// `&Transaction<..>`.
    Ref,
    /// `Transaction<..>`.
    Value,
}

/// The parameters of `sig` whose type is named `Transaction`, bound to a plain name.
pub(crate) fn transactions(sig: &Signature) -> Vec<TxParam<'_>> {
    sig.inputs
        .iter()
        .filter_map(|arg| {
            let FnArg::Typed(pt) = arg else { return None };
            let Pat::Ident(PatIdent {
                ident,
                mutability,
                by_ref: None,
                subpat: None,
                ..
            }) = &*pt.pat
            else {
                return None;
            };
            let (kind, ty) = match strip_groups(&pt.ty) {
                Type::Reference(r) if r.mutability.is_some() => (TxKind::RefMut, &*r.elem),
                Type::Reference(r) => (TxKind::Ref, &*r.elem),
                ty => (TxKind::Value, ty),
            };
            match strip_groups(ty) {
                Type::Path(tp)
                    if tp.qself.is_none()
                        && tp
                            .path
                            .segments
                            .last()
                            .is_some_and(|s| s.ident == "Transaction") =>
                {
                    Some(TxParam {
                        ident,
                        mutability: *mutability,
                        kind,
                    })
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{TxKind, transactions};

    fn found(sig: &str) -> Vec<(String, bool, bool)> {
        let sig: syn::Signature = syn::parse_str(sig).unwrap();
        transactions(&sig)
            .into_iter()
            .map(|tx| {
                (
                    tx.ident.to_string(),
                    tx.kind == TxKind::RefMut,
                    tx.mutability.is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn transactions_are_found_by_the_last_segment_of_their_type() {
        assert_eq!(
            found("async fn f(tx: &mut Transaction<'_, Postgres>, id: i64)"),
            [("tx".into(), true, false)]
        );
        assert_eq!(
            found(
                "async fn f(mut a: cache_runtime::Transaction<'static, Db>, b: &mut sqlx::Transaction<'_, Db>)"
            ),
            [("a".into(), false, true), ("b".into(), true, false)]
        );
        assert!(
            found("async fn f(tx: &mut PgConnection, t: Tx, (a, b): (Transaction, i64))")
                .is_empty()
        );
    }
}
