//! `#[cache_impl(...)]` on an `impl` block: defaults for the `#[cached]` and
//! `#[invalidates]` methods inside it, so a repository says once which cache it uses and
//! how `self` is keyed.
//!
//! It runs before the method attributes (an attribute on the block expands first) and adds
//! its keys to each of them that does not set the key itself.

use proc_macro2::{TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::{Expr, ImplItem, ItemImpl, Meta};

use crate::attr::{self, Attr};
use crate::ctxt::Ctxt;
use crate::expand::with_original;

const MACRO: &str = "#[cache_impl]";
const KEYS: &[&str] = &["cache", "self_key"];

struct Args {
    cache: Option<Expr>,
    self_key: Option<Expr>,
}

fn parse_args(cx: &mut Ctxt, tokens: TokenStream) -> Args {
    let mut cache = Attr::none(MACRO, "cache");
    let mut self_key = Attr::none(MACRO, "self_key");
    let parser = syn::meta::parser(|meta| {
        match attr::key_of(&meta).as_str() {
            // #[cache_impl(cache = &self.cache)]
            "cache" => {
                let expr: Expr = meta.value()?.parse()?;
                cache.set(cx, &meta.path, expr);
            }
            // #[cache_impl(self_key = self.tenant_id)]
            "self_key" => {
                let expr: Expr = meta.value()?.parse()?;
                self_key.set(cx, &meta.path, expr);
            }
            _ => attr::unknown_key(cx, &meta, MACRO, KEYS)?,
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, tokens) {
        cx.push(e);
    }
    if !cache.is_set() && !self_key.is_set() {
        cx.push(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[cache_impl] sets defaults for the methods in this block: give at least one of \
             `cache = &self.cache` or `self_key = ...`",
        ));
    }
    Args {
        cache: cache.get(),
        self_key: self_key.get(),
    }
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let args = parse_args(&mut cx, args);
    let mut block: ItemImpl = match syn::parse2(item.clone()) {
        Ok(block) => block,
        Err(e) => {
            cx.push(syn::Error::new(
                e.span(),
                format!("#[cache_impl] applies to an `impl` block: {e}"),
            ));
            return with_original(cx.check(), item);
        }
    };
    if let Err(e) = cx.check() {
        return with_original(Err(e), item);
    }
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else { continue };
        let has_self = method.sig.receiver().is_some();
        for attr in &mut method.attrs {
            let Some(name) = attr.path().segments.last().map(|s| s.ident.to_string()) else {
                continue;
            };
            // A default that reads `self` applies to methods only.
            let cache = args
                .cache
                .as_ref()
                .filter(|c| has_self || !mentions_self(c.to_token_stream()));
            let keys: &[(&str, Option<&Expr>)] = match name.as_str() {
                "cached" if has_self => &[("cache", cache), ("self_key", args.self_key.as_ref())],
                "cached" | "invalidates" => &[("cache", cache)],
                _ => continue,
            };
            let path = attr.path().clone();
            let mut tokens = match &attr.meta {
                Meta::List(list) => list.tokens.clone(),
                _ => TokenStream::new(),
            };
            let given = top_level_keys(&tokens);
            // `key = ...` replaces the whole key, and `skip(self)` says `self` is not keyed.
            let self_decided =
                given.iter().any(|k| k == "key" || k == "self_key") || skips_self(&tokens);
            for (key, value) in keys {
                let Some(value) = value else { continue };
                if given.iter().any(|k| k == key) || (*key == "self_key" && self_decided) {
                    continue;
                }
                let ident = syn::Ident::new(key, proc_macro2::Span::call_site());
                if !tokens.is_empty() {
                    tokens.extend(quote!(,));
                }
                tokens.extend(quote!(#ident = #value));
            }
            *attr = syn::parse_quote!(#[#path(#tokens)]);
        }
    }
    block.into_token_stream()
}

fn mentions_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(ident) => ident == "self",
        TokenTree::Group(group) => mentions_self(group.stream()),
        _ => false,
    })
}

/// The keys written `key = ...` or `key(...)` at the top level of attribute arguments.
fn top_level_keys(tokens: &TokenStream) -> Vec<String> {
    let tokens: Vec<TokenTree> = tokens.clone().into_iter().collect();
    let mut keys = Vec::new();
    let mut at_start = true;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Ident(ident) if at_start => {
                if matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '=')
                    || matches!(tokens.get(i + 1), Some(TokenTree::Group(_)))
                {
                    keys.push(ident.to_string());
                }
                at_start = false;
            }
            TokenTree::Punct(p) if p.as_char() == ',' => at_start = true,
            _ => at_start = false,
        }
    }
    keys
}

/// Whether the arguments hold `skip(..., self, ...)`.
fn skips_self(tokens: &TokenStream) -> bool {
    let tokens: Vec<TokenTree> = tokens.clone().into_iter().collect();
    tokens.windows(2).any(|pair| match pair {
        [TokenTree::Ident(ident), TokenTree::Group(group)] if ident == "skip" => group
            .stream()
            .into_iter()
            .any(|t| matches!(t, TokenTree::Ident(i) if i == "self")),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds_defaults_the_methods_do_not_set() {
        let out = super::expand(
            "cache = &self.cache, self_key = self.tenant"
                .parse()
                .unwrap(),
            "impl Repo {
                #[cached(ttl = \"60s\")] async fn a(&self) -> Option<i64> { None }
                #[cached(cache = &other)] async fn b(&self) -> Option<i64> { None }
                #[cached(skip(self))] async fn c(&self) -> Option<i64> { None }
                #[cached] async fn d(pool: &Pool) -> Option<i64> { None }
                #[invalidates(User)] async fn e(&self) -> Result<(), E> { Ok(()) }
                fn f(&self) {}
            }"
            .parse()
            .unwrap(),
        )
        .to_string();
        assert!(
            out.contains(
                "# [cached (ttl = \"60s\" , cache = & self . cache , self_key = self . tenant)]"
            ),
            "{out}"
        );
        assert!(
            out.contains("# [cached (cache = & other , self_key = self . tenant)]"),
            "{out}"
        );
        assert!(
            out.contains("# [cached (skip (self) , cache = & self . cache)]"),
            "{out}"
        );
        assert!(
            out.contains("# [cached ()] async fn d"),
            "no `self` to take the cache from: {out}"
        );
        assert!(
            out.contains("# [invalidates (User , cache = & self . cache)]"),
            "{out}"
        );
    }

    #[test]
    fn misuse_is_an_error() {
        for (args, item) in [
            ("", "impl Repo {}"),
            ("cache = &self.cache, cahce = 1", "impl Repo {}"),
            ("cache = &self.cache", "fn f() {}"),
        ] {
            let out = super::expand(args.parse().unwrap(), item.parse().unwrap()).to_string();
            assert!(out.contains("compile_error"), "{args} {item}: {out}");
        }
    }
}
