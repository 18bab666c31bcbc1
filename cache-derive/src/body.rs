//! The body a macro rewrites, as tracing-attributes finds it: an `async fn`'s statements,
//! or, in a method `#[async_trait]` has already expanded, the statements of the
//! `Box::pin(async move { .. })` it made (its receiver renamed `__self` inside).
//!
//! The rewrite is the same either way; only where it goes differs (the function's body,
//! or the boxed async block).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{
    Attribute, Expr, GenericArgument, ItemFn, PathArguments, ReturnType, Stmt, Type, TypeParamBound,
};

/// What a macro rewrites.
pub(crate) struct Body<'a> {
    pub(crate) stmts: &'a [Stmt],
    /// The output type; `None` for `()` written as no return type.
    pub(crate) output: Option<&'a Type>,
    /// How the statements name the receiver.
    pub(crate) self_name: &'static str,
    /// The statements are an `#[async_trait]` method's boxed async block.
    pub(crate) boxed: bool,
}

/// The body of `item`, or `None` when it is neither an `async fn` nor an `#[async_trait]`
/// method.
pub(crate) fn of(item: &ItemFn) -> Option<Body<'_>> {
    if item.sig.asyncness.is_some() {
        return Some(Body {
            stmts: &item.block.stmts,
            output: match &item.sig.output {
                ReturnType::Type(_, ty) => Some(ty),
                ReturnType::Default => None,
            },
            self_name: "self",
            boxed: false,
        });
    }
    let ReturnType::Type(_, ty) = &item.sig.output else {
        return None;
    };
    let output = boxed_future_output(ty)?;
    let [Stmt::Expr(Expr::Call(call), None)] = &item.block.stmts[..] else {
        return None;
    };
    let is_box_pin = matches!(&*call.func, Expr::Path(p)
        if p.path.segments.len() >= 2
            && p.path.segments[p.path.segments.len() - 2].ident == "Box"
            && p.path.segments[p.path.segments.len() - 1].ident == "pin");
    let [Expr::Async(block)] = call.args.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    if !is_box_pin || block.capture.is_none() {
        return None;
    }
    Some(Body {
        stmts: &block.block.stmts,
        output: Some(output),
        self_name: "__self",
        boxed: true,
    })
}

/// `R` in `Pin<Box<dyn Future<Output = R> + ..>>`.
fn boxed_future_output(ty: &Type) -> Option<&Type> {
    let pin = last_generic(ty, "Pin")?;
    let boxed = last_generic(pin, "Box")?;
    let Type::TraitObject(object) = boxed else {
        return None;
    };
    object.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(t) = bound else {
            return None;
        };
        let future = t.path.segments.last().filter(|s| s.ident == "Future")?;
        let PathArguments::AngleBracketed(args) = &future.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
            _ => None,
        })
    })
}

/// The single type argument of a path type whose last segment is `name`.
fn last_generic<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last().filter(|s| s.ident == name)?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

impl Body<'_> {
    /// The rewritten function: `item`'s signature and attributes around `generated`, the
    /// new statements (inside the boxed async block for an `#[async_trait]` method).
    pub(crate) fn emit(&self, item: &ItemFn, generated: TokenStream) -> TokenStream {
        let (inner, outer) = split_attrs(&item.attrs);
        let vis = &item.vis;
        let sig = &item.sig;
        let generated = if self.boxed {
            quote!(::std::boxed::Box::pin(async move { #generated }))
        } else {
            generated
        };
        quote! {
            #(#outer)*
            #vis #sig {
                #(#inner)*
                #generated
            }
        }
    }
}

/// Inner attributes (`#![allow(..)]` at the top of the body, which syn keeps with the
/// item's) and the item's own.
fn split_attrs(attrs: &[Attribute]) -> (Vec<&Attribute>, Vec<&Attribute>) {
    attrs
        .iter()
        .partition(|a| matches!(a.style, syn::AttrStyle::Inner(_)))
}
