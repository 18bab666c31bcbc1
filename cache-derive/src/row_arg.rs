//! The id of the row a query reads or writes, as the function's code names it: the macros
//! compute it before the body runs, so it must be a value the body binds as it was given.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::visit::Visit;
use syn::{Expr, FnArg, Pat, Signature, Type};

/// The value bound to a row's id, as an expression the generated code can evaluate before
/// the body runs, when it is a parameter or a field path of one (`id`, `&id`, `*id`,
/// `article.id`, `self.id`) that the body cannot have changed: not `mut`, not behind
/// `&mut`, never shadowed by a binding of the same name. `None` otherwise: the query
/// follows its whole table.
pub(crate) fn param_value(expr: &Expr, sig: &Signature, block: &syn::Block) -> Option<TokenStream> {
    let path = strip(expr);
    let mut base = path;
    while let Expr::Field(field) = base {
        base = strip(&field.base);
    }
    let Expr::Path(p) = base else { return None };
    if p.qself.is_some() || p.path.segments.len() != 1 {
        return None;
    }
    let segment = &p.path.segments[0];
    if !segment.arguments.is_none() {
        return None;
    }
    let name = segment.ident.to_string();
    let unchanged = sig.inputs.iter().any(|input| match input {
        FnArg::Receiver(r) => {
            name == "self"
                && r.mutability.is_none()
                && !matches!(&*r.ty, Type::Reference(t) if t.mutability.is_some())
        }
        FnArg::Typed(pt) => {
            matches!(&*pt.pat, Pat::Ident(i)
                if i.ident == name && i.mutability.is_none() && i.by_ref.is_none()
                    && i.subpat.is_none())
                && !matches!(&*pt.ty, Type::Reference(t) if t.mutability.is_some())
        }
    });
    if !unchanged || (name != "self" && rebinds(block, &name)) {
        return None;
    }
    Some(path.to_token_stream())
}

/// `expr` without the `&`, `*` and parentheses around it.
fn strip(expr: &Expr) -> &Expr {
    match expr {
        Expr::Reference(r) if r.mutability.is_none() => strip(&r.expr),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Deref(_),
            expr,
            ..
        }) => strip(expr),
        Expr::Paren(p) => strip(&p.expr),
        Expr::Group(g) => strip(&g.expr),
        other => other,
    }
}

/// Whether `block` binds `name` anywhere (a `let`, a closure's or a match arm's pattern),
/// or passes it to a macro whose body could.
fn rebinds(block: &syn::Block, name: &str) -> bool {
    struct Find<'a> {
        name: &'a str,
        found: bool,
    }
    impl<'ast> Visit<'ast> for Find<'_> {
        fn visit_pat_ident(&mut self, i: &'ast syn::PatIdent) {
            self.found |= i.ident == self.name;
            syn::visit::visit_pat_ident(self, i);
        }
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            let query =
                mac.path.segments.last().is_some_and(|s| {
                    crate::sql::find::MACROS.contains(&s.ident.to_string().as_str())
                });
            if !query && mentions(mac.tokens.clone(), self.name) {
                self.found = true;
            }
        }
    }
    fn mentions(tokens: TokenStream, name: &str) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == name,
            proc_macro2::TokenTree::Group(g) => mentions(g.stream(), name),
            _ => false,
        })
    }
    let mut find = Find { name, found: false };
    find.visit_block(block);
    find.found
}

#[cfg(test)]
mod tests {
    use super::param_value;

    fn value(sig: &str, body: &str, expr: &str) -> Option<String> {
        let item: syn::ItemFn = syn::parse_str(&format!("{sig} {{ {body} }}")).unwrap();
        let expr: syn::Expr = syn::parse_str(expr).unwrap();
        param_value(&expr, &item.sig, &item.block).map(|t| t.to_string().replace(' ', ""))
    }

    #[test]
    fn parameters_and_their_fields() {
        let f = "async fn f(&self, pool: &Pool, id: i64, a: &Article)";
        assert_eq!(value(f, "", "id").as_deref(), Some("id"));
        assert_eq!(value(f, "", "&id").as_deref(), Some("id"));
        assert_eq!(value(f, "", "a.id").as_deref(), Some("a.id"));
        assert_eq!(value(f, "", "&self.id").as_deref(), Some("self.id"));
        assert_eq!(value(f, "", "other"), None);
        assert_eq!(value(f, "", "id + 1"), None);
        assert_eq!(value(f, "", "a.id()"), None);
    }

    #[test]
    fn a_value_the_body_may_change_is_not_taken() {
        assert_eq!(value("async fn f(mut id: i64)", "", "id"), None);
        assert_eq!(value("async fn f(id: &mut i64)", "", "id"), None);
        assert_eq!(value("async fn f(&mut self)", "", "self.id"), None);
        assert_eq!(value("async fn f(id: i64)", "let id = id + 1;", "id"), None);
        assert_eq!(
            value("async fn f(id: i64)", "if let Some(id) = x {}", "id"),
            None
        );
        assert_eq!(value("async fn f(id: i64)", "my_macro!(id);", "id"), None);
        assert_eq!(
            value("async fn f(id: i64)", "sqlx::query!(\"..\", id);", "id").as_deref(),
            Some("id")
        );
    }
}
