//! The parameters of a cached or invalidating function, as the macros see them.
//!
//! Whether a parameter is keyed is *not* decided here: generated code classifies each one
//! by its type (`__private::Arg`), so a pool, connection, transaction or executor is never
//! keyed whatever it is called, and a user type named `Transaction` is keyed like any other
//! value. Syntax only finds the receiver, the names, and the `&Cache` parameter a function
//! takes its cache from (a parameter whose type is named `Cache`, checked by the compiler
//! to be `cache_runtime::Cache`).

use syn::{FnArg, Ident, Pat, PatIdent, PatType, Receiver, Signature, Type};

pub(crate) enum Role<'a> {
    /// `self`, `&self`, `&mut self`, `self: Arc<Self>`.
    Receiver,
    /// A parameter bound to a name.
    Named(&'a Ident, &'a PatType),
    /// A destructuring pattern (or `_`).
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
    sig.inputs
        .iter()
        .map(|arg| match arg {
            FnArg::Receiver(_) => Role::Receiver,
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(PatIdent { ident, .. }) => Role::Named(ident, pt),
                _ => Role::Pattern(pt),
            },
        })
        .collect()
}

/// The receiver of `sig`, if it is a method.
pub(crate) fn receiver(sig: &Signature) -> Option<&Receiver> {
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) => Some(r),
        _ => None,
    }
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

/// The first parameter whose type is named `Cache` (`&Cache`, `Cache`,
/// `&cache_runtime::Cache`), bound to a name.
pub(crate) fn cache_param(sig: &Signature) -> Option<CacheParam<'_>> {
    classify(sig).into_iter().find_map(|role| {
        let Role::Named(ident, pt) = role else {
            return None;
        };
        let (by_value, ty) = match strip_groups(&pt.ty) {
            Type::Reference(r) => (false, strip_groups(&r.elem)),
            ty => (true, ty),
        };
        match ty {
            Type::Path(tp)
                if tp.qself.is_none()
                    && tp.path.segments.last().is_some_and(|s| s.ident == "Cache") =>
            {
                Some(CacheParam { ident, by_value })
            }
            _ => None,
        }
    })
}
