//! Pieces of attribute parsing shared by the three macros: one slot per key that reports
//! duplicates, table-name literals, and unknown keys.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, Lit, LitStr, Token};

use crate::ctxt::Ctxt;

/// One attribute key: set at most once.
pub(crate) struct Attr<T> {
    macro_name: &'static str,
    key: &'static str,
    value: Option<T>,
}

impl<T> Attr<T> {
    pub(crate) fn none(macro_name: &'static str, key: &'static str) -> Attr<T> {
        Attr {
            macro_name,
            key,
            value: None,
        }
    }

    /// Sets the value; a second `key = ...` is an error on its key.
    pub(crate) fn set<S: ToTokens>(&mut self, cx: &mut Ctxt, at: S, value: T) {
        if self.value.is_some() {
            cx.error_spanned_by(
                at,
                format!("duplicate `{}` in {}", self.key, self.macro_name),
            );
        } else {
            self.value = Some(value);
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.value.is_some()
    }

    pub(crate) fn get(self) -> Option<T> {
        self.value
    }
}

/// The key written at `meta.path`, as a string (`""` for a path that is not one identifier).
pub(crate) fn key_of(meta: &ParseNestedMeta) -> String {
    meta.path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Reports an unknown key listing the valid ones, then skips its value (`= expr` or
/// `(...)`) so that the keys after it are still checked.
pub(crate) fn unknown_key(
    cx: &mut Ctxt,
    meta: &ParseNestedMeta,
    macro_name: &str,
    valid: &[&str],
) -> syn::Result<()> {
    let expected = valid
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let key = meta.path.to_token_stream().to_string().replace(' ', "");
    cx.error_spanned_by(
        &meta.path,
        format!("unknown key `{key}` in {macro_name}; expected one of: {expected}"),
    );
    skip_value(meta)
}

/// Consumes `= expr` or a parenthesized group after a key, if present.
pub(crate) fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

/// Strips the invisible groups `macro_rules!` wraps around `$e:expr` fragments.
pub(crate) fn ungroup(mut expr: &Expr) -> &Expr {
    while let Expr::Group(g) = expr {
        expr = &g.expr;
    }
    expr
}

/// A table name: a non-empty string literal.
pub(crate) fn table_name(cx: &mut Ctxt, expr: &Expr) -> Option<LitStr> {
    match ungroup(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            if lit.value().trim().is_empty() {
                cx.error_spanned_by(lit, "empty table name");
                None
            } else {
                Some(lit.clone())
            }
        }
        other => {
            cx.error_spanned_by(
                other,
                "expected a table name as a string literal, such as \"users\"",
            );
            None
        }
    }
}

/// Declared tables: a list of literals the macro checks, or an expression it cannot read
/// (a `const`), trusted as written.
pub(crate) enum Tables {
    Listed(Vec<LitStr>),
    /// `tables = USER_TABLES`: any expression of a `&[&str]` or `[&str; N]`.
    Expr(Expr),
}

/// `["users", "posts"]`, or an expression such as a `const`.
pub(crate) fn tables(cx: &mut Ctxt, expr: &Expr) -> Tables {
    match ungroup(expr) {
        Expr::Array(_) => Tables::Listed(table_list(cx, expr)),
        Expr::Lit(_) => {
            cx.error_spanned_by(
                expr,
                "expected a list of table names, such as `tables = [\"users\", \"posts\"]`, \
                 or a constant such as `tables = USER_TABLES`",
            );
            Tables::Listed(Vec::new())
        }
        other => Tables::Expr(other.clone()),
    }
}

/// `["users", "posts"]`: non-empty string literals, no duplicates.
pub(crate) fn table_list(cx: &mut Ctxt, expr: &Expr) -> Vec<LitStr> {
    let Expr::Array(array) = ungroup(expr) else {
        cx.error_spanned_by(
            expr,
            "expected a list of table names, such as `tables = [\"users\", \"posts\"]`",
        );
        return Vec::new();
    };
    if array.elems.is_empty() {
        cx.error_spanned_by(
            array,
            "`tables` is empty: name at least one table the query reads",
        );
    }
    let mut tables: Vec<LitStr> = Vec::new();
    for elem in &array.elems {
        let Some(lit) = table_name(cx, elem) else {
            continue;
        };
        if tables.iter().any(|t| t.value() == lit.value()) {
            cx.error_spanned_by(&lit, format!("duplicate table {:?}", lit.value()));
        } else {
            tables.push(lit);
        }
    }
    tables
}

/// The spans of the first and last tokens of `tokens`.
///
/// Generated tokens given the first span at their start and the last at their end make
/// rustc underline the whole of the user's code, even where `Span::join` is unavailable.
pub(crate) fn span_range<T: ToTokens + ?Sized>(tokens: &T) -> (Span, Span) {
    let mut iter = tokens.to_token_stream().into_iter();
    let first = iter.next().map_or_else(Span::call_site, |t| t.span());
    let last = iter.last().map_or(first, |t| t.span());
    (first, last)
}

/// `&(inner)`, spanning the whole of `at` in diagnostics.
pub(crate) fn reference_spanning<T: ToTokens + ?Sized>(at: &T, inner: TokenStream) -> TokenStream {
    let (first, last) = span_range(at);
    let mut group = Group::new(Delimiter::Parenthesis, inner);
    group.set_span(last);
    quote_spanned!(first=> &#group)
}
