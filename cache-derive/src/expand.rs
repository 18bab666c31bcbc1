//! Pieces every macro's expansion uses: the path to the runtime's support module, hygienic
//! locals, the fake return edge, and the original item re-emitted beside errors.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use crate::ctxt::Ctxt;

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
pub(crate) fn with_original(cx: Ctxt, item: TokenStream) -> TokenStream {
    let errors = cx.check().err().map(syn::Error::into_compile_error);
    quote!(#errors #item)
}
