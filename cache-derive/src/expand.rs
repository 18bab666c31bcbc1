//! Pieces every macro's expansion uses: the path to the runtime's support module, hygienic
//! locals, the cache binding, the fake return edge, and the original item re-emitted beside
//! errors.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Type};

use crate::args::CacheParam;

/// `::cache_runtime::__private`, the only path generated code reaches the runtime by.
#[derive(Clone, Copy)]
pub(crate) struct Private;

impl ToTokens for Private {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(quote!(::cache_runtime::__private));
    }
}

/// A generated local variable, invisible to the user's code (`Span::mixed_site`).
pub(crate) fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// How generated code reaches its cache, as `__cache: &Cache`: `cache = expr`, else a
/// `Cache` parameter, else the process-wide cache.
pub(crate) struct CacheBinding {
    /// Binds `__cache` by reference: no clone, for the hit path.
    pub(crate) borrow: TokenStream,
    /// Rebinds `__cache` to an owned clone (an `Arc` increment), for code that runs the
    /// body: the body may move or mutate what the borrow came from (`cache = &self.cache`
    /// under `&mut self`, `cache = &ctx.cache` with `ctx` moved, a `Cache` taken by value).
    /// Empty when the cache is a `&Cache` parameter or the process-wide one.
    pub(crate) own: TokenStream,
}

pub(crate) fn bind_cache(expr: Option<&Expr>, param: Option<CacheParam<'_>>) -> CacheBinding {
    let private = Private;
    let cache_var = local("__cache");
    let owned_var = local("__cache_owned");
    let own = |span: Span| {
        quote_spanned! {span=>
            let #owned_var: #private::Cache =
                <#private::Cache as ::core::clone::Clone>::clone(#cache_var);
            let #cache_var: &#private::Cache = &#owned_var;
        }
    };
    match (expr, param) {
        (Some(expr), _) => CacheBinding {
            borrow: quote_spanned!(expr.span()=> let #cache_var: &#private::Cache = #expr;),
            own: own(expr.span()),
        },
        (None, Some(param)) => CacheBinding {
            borrow: quote!(let #cache_var: &#private::Cache = #param;),
            own: if param.by_value {
                own(Span::call_site())
            } else {
                TokenStream::new()
            },
        },
        (None, None) => CacheBinding {
            borrow: quote!(let #cache_var: &#private::Cache = #private::global();),
            own: TokenStream::new(),
        },
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

/// The errors next to the untouched item, so the rest of the crate still type-checks
/// against the function as written.
pub(crate) fn with_original(checked: syn::Result<()>, item: TokenStream) -> TokenStream {
    let errors = checked.err().map(syn::Error::into_compile_error);
    quote!(#errors #item)
}
