//! `ttl = ...`: literals are checked at expansion time with the runtime's grammar (the same
//! file, `ttl_grammar.rs`) and emitted as exact `Ttl` constructors; any other expression is
//! converted with `Into<Ttl>` on every call.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Lit, UnOp};

use crate::attr::ungroup;
use crate::expand::Private;

use crate::ttl_grammar::{ACCEPTED_FORMS, Invalid, Parsed};

/// Tokens evaluating to a `::cache_runtime::__private::Ttl`, or an error on the literal.
pub(crate) fn expand(expr: &Expr) -> syn::Result<TokenStream> {
    let ttl = quote!(#Private::Ttl);
    let parsed = match ungroup(expr) {
        Expr::Lit(ExprLit { lit, .. }) => literal(lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) if matches!(ungroup(inner), Expr::Lit(_)) => {
            Err(Invalid::OutOfRange("a TTL cannot be negative"))
        }
        other => {
            // Evaluated on every call; a type error points at the user's expression.
            return Ok(quote_spanned! {other.span()=>
                ::core::convert::Into::<#ttl>::into(#other)
            });
        }
    };
    match parsed {
        Ok(parsed) => Ok(constructor(&parsed)),
        Err(Invalid::Malformed(message)) => Err(syn::Error::new_spanned(expr, message)),
        Err(Invalid::OutOfRange(reason)) => Err(syn::Error::new_spanned(
            expr,
            format!("ttl out of range: {reason}"),
        )),
    }
}

fn literal(lit: &Lit) -> Result<Parsed, Invalid> {
    match lit {
        Lit::Str(s) => parse(&s.value()),
        Lit::Bool(b) => Ok(if b.value {
            Parsed::Forever
        } else {
            Parsed::Bypass
        }),
        Lit::Int(int) => {
            if !matches!(
                int.suffix(),
                "" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize"
            ) {
                return Err(Invalid::Malformed(format!(
                    "a TTL number is milliseconds and has no `{}` suffix; expected {ACCEPTED_FORMS}",
                    int.suffix()
                )));
            }
            let ms: u64 = int.base10_parse().map_err(|_| {
                Invalid::OutOfRange("the number of milliseconds does not fit in a u64")
            })?;
            crate::ttl_grammar::for_duration(Duration::from_millis(ms))
        }
        _ => Err(Invalid::Malformed(format!("expected {ACCEPTED_FORMS}"))),
    }
}

/// The runtime's grammar (the same file), its errors worded for a literal.
fn parse(s: &str) -> Result<Parsed, Invalid> {
    crate::ttl_grammar::parse(s).map_err(|e| match e {
        Invalid::Malformed(reason) => Invalid::Malformed(format!(
            "invalid TTL {s:?}: {reason}; expected {ACCEPTED_FORMS}"
        )),
        out_of_range => out_of_range,
    })
}

fn constructor(parsed: &Parsed) -> TokenStream {
    let ttl = quote!(#Private::Ttl);
    match *parsed {
        Parsed::Forever => quote!(#ttl::Forever),
        Parsed::Bypass => quote!(#ttl::Bypass),
        Parsed::For(d) => {
            let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
            quote!(#ttl::For(::core::time::Duration::new(#secs, #nanos)))
        }
        Parsed::Until { secs, nanos } if secs >= 0 => {
            let (secs, nanos) = (secs.unsigned_abs(), nanos.unsigned_abs());
            quote!(#ttl::Until(
                ::std::time::UNIX_EPOCH + ::core::time::Duration::new(#secs, #nanos)
            ))
        }
        Parsed::Until { secs, nanos } => {
            // Before 1970: in the past, so nothing is cached; the exact instant is kept
            // where the platform can represent it.
            let (secs, nanos) = (secs.unsigned_abs(), nanos.unsigned_abs());
            quote!(#ttl::Until(
                match ::std::time::UNIX_EPOCH.checked_sub(::core::time::Duration::new(#secs, #nanos)) {
                    ::core::option::Option::Some(at) => at,
                    ::core::option::Option::None => ::std::time::UNIX_EPOCH,
                }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_runtime_forms() {
        let ok = |s: &str| parse(s).ok();
        assert_eq!(ok("60s"), Some(Parsed::For(Duration::from_secs(60))));
        assert_eq!(ok("1h30m"), Some(Parsed::For(Duration::from_secs(5400))));
        assert_eq!(ok("250ms"), Some(Parsed::For(Duration::from_millis(250))));
        assert_eq!(ok("2d"), Some(Parsed::For(Duration::from_secs(172_800))));
        assert_eq!(ok("60000"), Some(Parsed::For(Duration::from_secs(60))));
        assert_eq!(ok("true"), Some(Parsed::Forever));
        assert_eq!(ok("false"), Some(Parsed::Bypass));
        assert_eq!(
            ok("2026-09-01T02:00:00+02:00"),
            Some(Parsed::Until {
                secs: 1_788_220_800,
                nanos: 0
            })
        );
    }

    #[test]
    fn rejects_what_the_runtime_rejects() {
        for bad in [
            "60x",
            "",
            "0s",
            "0",
            "-5s",
            "1 month",
            "2026-13-01T00:00:00Z",
            "soon",
            "99999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
