//! What a method's body reads from `self`: the field paths it reads (`self.tenant`,
//! `self.config.region`), which `#[cached]` keys like parameters, and the uses that could
//! read anything (`self.helper()`, `f(self)`, `let Self { .. } = self`), which it cannot
//! key and reports.
//!
//! Macro calls in the body (`format!`, `sqlx::query!`) are read as comma-separated
//! expressions when they parse as such, else as tokens: `self . a . b` is a field path,
//! `self . a (` a method call.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Expr, ExprField, ExprPath, Member, Token};

/// A field path read from `self`, such as `self.config.region`: its members, and where
/// it was first read. As tokens, the expression `self.config.region` (spanned there).
#[derive(Clone)]
pub(crate) struct FieldPath {
    pub(crate) members: Vec<Member>,
    pub(crate) span: Span,
}

impl quote::ToTokens for FieldPath {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let members = &self.members;
        tokens.extend(quote::quote_spanned!(self.span=> self #(.#members)*));
    }
}

/// What the body does with `self`.
#[derive(Default)]
pub(crate) struct Reads {
    /// Every field path read, in the order first read, the longer ones too: what to look
    /// at for a handle (a connection at `self.db.conn` is not seen by looking at
    /// `self.db`). [`Reads::keyed`] is what to key.
    pub(crate) all: Vec<FieldPath>,
    /// Uses of `self` itself (a method call on it, passing it on): the first one.
    pub(crate) opaque: Option<(Span, &'static str)>,
}

impl Reads {
    fn field(&mut self, members: Vec<Member>, span: Span) {
        if !self.all.iter().any(|f| f.members == members) {
            self.all.push(FieldPath { members, span });
        }
    }

    /// The paths to key: those no other path read is a prefix of (keying `self.config`
    /// covers `self.config.region`).
    pub(crate) fn keyed(&self) -> Vec<FieldPath> {
        let covered = |f: &FieldPath| {
            self.all
                .iter()
                .any(|g| g.members.len() < f.members.len() && f.members.starts_with(&g.members))
        };
        self.all.iter().filter(|f| !covered(f)).cloned().collect()
    }

    fn opaque(&mut self, span: Span, what: &'static str) {
        self.opaque.get_or_insert((span, what));
    }
}

/// Reads of the receiver in `stmts`, where it is named `self_name` (`self`, or `__self`
/// once `#[async_trait]` has rewritten the body).
pub(crate) fn reads(stmts: &[syn::Stmt], self_name: &'static str) -> Reads {
    let mut scan = Scan {
        reads: Reads::default(),
        self_name,
    };
    for stmt in stmts {
        scan.visit_stmt(stmt);
    }
    scan.reads
}

struct Scan {
    reads: Reads,
    self_name: &'static str,
}

impl Scan {
    /// `self.a.b` as `[a, b]`; `None` when the innermost expression is not `self`.
    fn self_path(&self, expr: &Expr) -> Option<Vec<Member>> {
        match expr {
            Expr::Field(ExprField { base, member, .. }) => {
                let mut path = self.self_path(base)?;
                path.push(member.clone());
                Some(path)
            }
            Expr::Paren(p) => self.self_path(&p.expr),
            Expr::Group(g) => self.self_path(&g.expr),
            Expr::Path(p) if self.is_self(p) => Some(Vec::new()),
            _ => None,
        }
    }

    fn is_self(&self, p: &ExprPath) -> bool {
        p.qself.is_none() && p.path.is_ident(self.self_name)
    }
}

impl<'ast> Visit<'ast> for Scan {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Field(field) => match self.self_path(expr) {
                Some(members) => self.reads.field(members, field.member_span()),
                None => visit::visit_expr(self, expr),
            },
            Expr::MethodCall(call) => match self.self_path(&call.receiver) {
                // `self.helper()`: the method may read any field.
                Some(members) if members.is_empty() => {
                    self.reads
                        .opaque(call.method.span(), "calls a method on `self`");
                    call.args.iter().for_each(|a| self.visit_expr(a));
                }
                // `self.items.len()`: reads `self.items`.
                _ => visit::visit_expr(self, expr),
            },
            Expr::Path(p) if self.is_self(p) => {
                self.reads
                    .opaque(p.path.segments[0].ident.span(), "uses `self` as a whole");
            }
            Expr::Macro(m) => self.visit_macro(&m.mac),
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let parsed = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated);
        match parsed {
            Ok(args) => args.iter().for_each(|a| {
                if let Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                }) = a
                {
                    self.format_string(lit);
                }
                self.visit_expr(a);
            }),
            Err(_) => self.scan_tokens(mac.tokens.clone()),
        }
    }

    // Items nested in the body have a `self` of their own.
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

trait MemberSpan {
    fn member_span(&self) -> Span;
}

impl MemberSpan for ExprField {
    fn member_span(&self) -> Span {
        match &self.member {
            Member::Named(ident) => ident.span(),
            Member::Unnamed(index) => index.span,
        }
    }
}

impl Scan {
    /// A format string naming `self` inline (`"{self}"`, `"{self:?}"`) formats all of it.
    fn format_string(&mut self, lit: &syn::LitStr) {
        if inline_args(&lit.value()).any(|name| name == "self" || name == self.self_name) {
            self.reads.opaque(lit.span(), "formats `self` as a whole");
        }
    }

    /// Macro arguments that are not expressions: `self . a . b` is a field path, `self`
    /// followed by anything else (or `self . a (`, a method) is an opaque use.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => self.scan_tokens(g.stream()),
                TokenTree::Literal(lit) => {
                    if let Ok(lit) = syn::parse2::<syn::LitStr>(lit.to_token_stream()) {
                        self.format_string(&lit);
                    }
                }
                TokenTree::Ident(ident) if ident == self.self_name => {
                    let mut members = Vec::new();
                    let mut j = i + 1;
                    while let (Some(TokenTree::Punct(dot)), Some(TokenTree::Ident(name))) =
                        (tokens.get(j), tokens.get(j + 1))
                    {
                        if dot.as_char() != '.' {
                            break;
                        }
                        members.push((Member::Named(name.clone()), name.span()));
                        j += 2;
                    }
                    // `self.a.method(..)`, `self.a.method::<T>(..)`: `method` is not a
                    // field; nor is `await` in `self.fut.await`.
                    let call = match tokens.get(j) {
                        Some(TokenTree::Group(g)) => {
                            g.delimiter() == proc_macro2::Delimiter::Parenthesis
                        }
                        Some(TokenTree::Punct(p)) => p.as_char() == ':',
                        _ => false,
                    };
                    if call {
                        members.pop();
                    }
                    if let Some(at) = members
                        .iter()
                        .position(|(m, _)| matches!(m, Member::Named(name) if name == "await"))
                    {
                        members.truncate(at);
                    }
                    match members.first() {
                        Some(&(_, span)) => {
                            self.reads
                                .field(members.into_iter().map(|(m, _)| m).collect(), span);
                        }
                        None => self.reads.opaque(ident.span(), "uses `self` as a whole"),
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// The names of the inline arguments of a format string: `a` and `b` in
/// `"{a} {{x}} {b:>8}"`.
fn inline_args(format: &str) -> impl Iterator<Item = &str> {
    let mut rest = format;
    std::iter::from_fn(move || {
        loop {
            let open = rest.find('{')?;
            rest = &rest[open + 1..];
            if let Some(after) = rest.strip_prefix('{') {
                rest = after; // `{{` is a literal brace
                continue;
            }
            let end = rest.find(['}', ':']).unwrap_or(rest.len());
            let name = rest[..end].trim();
            rest = &rest[end..];
            return Some(name);
        }
    })
}

#[cfg(test)]
mod tests {
    use quote::ToTokens;

    fn names(paths: &[super::FieldPath]) -> Vec<String> {
        paths
            .iter()
            .map(|f| {
                f.members
                    .iter()
                    .map(|m| m.to_token_stream().to_string())
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect()
    }

    fn scan(body: &str) -> (Vec<String>, Option<&'static str>) {
        let block: syn::Block = syn::parse_str(body).unwrap();
        let reads = super::reads(&block.stmts, "self");
        (names(&reads.keyed()), reads.opaque.map(|(_, what)| what))
    }

    #[test]
    fn every_path_is_kept_for_handles() {
        let block: syn::Block =
            syn::parse_str("{ self.db.log(); fetch(&mut *self.db.conn); self.db.conn.x }").unwrap();
        let reads = super::reads(&block.stmts, "self");
        let all: Vec<String> = names(&reads.all);
        assert_eq!(all, ["db", "db.conn", "db.conn.x"]);
        assert_eq!(reads.keyed().len(), 1);
    }

    #[test]
    fn field_paths_are_found_and_merged() {
        let (fields, opaque) = scan(
            "{ let n = self.config.region.len(); query(&self.pool).bind(self.tenant).bind(self.config.limit); self.0 }",
        );
        assert_eq!(
            fields,
            ["config.region", "pool", "tenant", "config.limit", "0"]
        );
        assert_eq!(opaque, None);
        let (fields, _) = scan("{ self.config.limit; self.config }");
        assert_eq!(fields, ["config"]);
    }

    #[test]
    fn opaque_uses_are_reported() {
        assert_eq!(
            scan("{ self.helper() }").1,
            Some("calls a method on `self`")
        );
        assert_eq!(scan("{ helper(self) }").1, Some("uses `self` as a whole"));
        assert_eq!(
            scan("{ let Self { a, .. } = self; a }").1,
            Some("uses `self` as a whole")
        );
        assert_eq!(scan("{ let f = || self.tenant; f() }").1, None);
    }

    #[test]
    fn macros_are_read() {
        let (fields, opaque) = scan(r#"{ format!("{} {}", self.tenant, self.name.len()) }"#);
        assert_eq!(fields, ["tenant", "name"]);
        assert_eq!(opaque, None);
        let (fields, opaque) = scan(r#"{ weird!(self.a.b ; self.c.go() => self) }"#);
        assert_eq!(fields, ["a.b", "c"]);
        assert_eq!(opaque, Some("uses `self` as a whole"));
        let (fields, _) = scan(r#"{ weird!(self.cfg.get::<u8>(1) ; self.fut.await ;) }"#);
        assert_eq!(fields, ["cfg", "fut"]);
    }

    #[test]
    fn format_strings_naming_self_are_reported() {
        assert_eq!(
            scan(r#"{ format!("SELECT * FROM {self}.users") }"#).1,
            Some("formats `self` as a whole")
        );
        assert_eq!(
            scan(r#"{ write!(f, "{self:?} {}", 1) }"#).1,
            Some("formats `self` as a whole")
        );
        assert_eq!(
            scan(r#"{ weird!(f ; "{ self }") }"#).1,
            Some("formats `self` as a whole")
        );
        assert_eq!(
            scan(r#"{ format!("{{self}} {selfish} {}", self.a) }"#).1,
            None
        );
        assert_eq!(
            super::inline_args("{a} {{x}} {b:>8} {}").collect::<Vec<_>>(),
            ["a", "b", ""]
        );
    }

    #[test]
    fn nested_items_have_their_own_self() {
        assert_eq!(
            scan("{ impl X { fn f(&self) { self.g() } } self.a }"),
            (vec!["a".to_string()], None)
        );
    }
}
