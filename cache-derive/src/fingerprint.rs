//! A stable hash of a function's tokens, mixed into its cache keys so that editing the
//! query (attribute, signature or body) gives it new keys.

use quote::ToTokens;

/// 64-bit FNV-1a of the tokens' text, as 16 hex digits. The text is what `TokenStream`
/// prints, which depends only on the tokens (not on spans or whitespace in the source).
pub(crate) fn of<A: ToTokens, B: ToTokens>(attribute: &A, function: &B) -> String {
    let text = format!(
        "{} | {}",
        attribute.to_token_stream(),
        function.to_token_stream()
    );
    format!("{:016x}", crate::fnv::fnv1a(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use quote::quote;

    #[test]
    fn depends_on_tokens_not_layout() {
        let a = super::of(&quote!(fn f(x: i64)), &quote!({ x + 1 }));
        let b = super::of(&quote!(fn   f( x : i64 )), &quote!({ x + 1 }));
        let c = super::of(&quote!(fn f(x: i64)), &quote!({ x + 2 }));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
    }
}
