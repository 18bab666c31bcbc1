//! `#[derive(CacheEntity)]`: `#[cache(table = "users", ttl = ...)]` on the struct,
//! `#[cache(id)]` on the id field.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, Ident, LitStr, Type};

use crate::attr::{self, Attr};
use crate::ctxt::Ctxt;
use crate::expand::Private;
use crate::ttl;

const MACRO: &str = "#[cache] on a CacheEntity";
const STRUCT_KEYS: &[&str] = &["table", "ttl"];
const FIELD_KEYS: &[&str] = &["id"];

/// A checked entity.
struct Entity<'a> {
    input: &'a DeriveInput,
    table: LitStr,
    id: &'a Ident,
    id_ty: &'a Type,
    /// Tokens evaluating to a `Ttl`.
    ttl: Option<TokenStream>,
}

pub(crate) fn expand(input: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::default();
    let entity = parse(&mut cx, input);
    match (cx.check(), entity) {
        (Ok(()), Some(entity)) => generate(&entity),
        (result, _) => {
            let errors = result.err().map(syn::Error::into_compile_error);
            let stub = fallback(input);
            quote!(#errors #stub)
        }
    }
}

fn parse<'a>(cx: &mut Ctxt, input: &'a DeriveInput) -> Option<Entity<'a>> {
    let mut table = Attr::none(MACRO, "table");
    let mut ttl = Attr::none(MACRO, "ttl");
    // A misspelled or invalid `table` is reported as such, not again as a missing one.
    let mut table_attempted = false;
    for a in input.attrs.iter().filter(|a| a.path().is_ident("cache")) {
        let parsed = a.parse_nested_meta(|meta| {
            match attr::key_of(&meta).as_str() {
                // #[cache(table = "users")]
                "table" => {
                    table_attempted = true;
                    let expr: Expr = meta.value()?.parse()?;
                    if let Some(lit) = attr::table_name(cx, &expr) {
                        table.set(cx, &meta.path, lit);
                    }
                }
                // #[cache(ttl = "5m")]
                "ttl" => {
                    let expr: Expr = meta.value()?.parse()?;
                    if let Some(tokens) = cx.ok(ttl::expand(&expr)) {
                        ttl.set(cx, &meta.path, tokens);
                    }
                }
                "id" => cx.error_spanned_by(
                    &meta.path,
                    "`id` belongs on a field: put #[cache(id)] on the id field",
                ),
                _ => {
                    table_attempted = true;
                    attr::unknown_key(cx, &meta, "#[cache] on a struct", STRUCT_KEYS)?;
                }
            }
            Ok(())
        });
        if cx.ok(parsed).is_none() {
            table_attempted = true;
        }
    }

    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Some(named),
            Fields::Unnamed(_) | Fields::Unit => {
                cx.error_spanned_by(
                    &input.ident,
                    "CacheEntity can only be derived for a struct with named fields \
                     (one of which is the id)",
                );
                None
            }
        },
        Data::Enum(e) => {
            cx.error_spanned_by(
                e.enum_token,
                "CacheEntity can only be derived for a struct with named fields, not an enum",
            );
            None
        }
        Data::Union(u) => {
            cx.error_spanned_by(
                u.union_token,
                "CacheEntity can only be derived for a struct with named fields, not a union",
            );
            None
        }
    };

    let mut id: Option<(&Ident, &Type)> = None;
    for field in fields.iter().flat_map(|f| &f.named) {
        let Some(ident) = &field.ident else { continue };
        for a in field.attrs.iter().filter(|a| a.path().is_ident("cache")) {
            let mut marked = Attr::none("#[cache] on a field", "id");
            let parsed = a.parse_nested_meta(|meta| {
                match attr::key_of(&meta).as_str() {
                    // #[cache(id)]
                    "id" if meta.input.is_empty() || meta.input.peek(syn::Token![,]) => {
                        marked.set(cx, &meta.path, ());
                    }
                    "id" => {
                        cx.error_spanned_by(&meta.path, "`id` takes no value: write #[cache(id)]");
                        attr::skip_value(&meta)?;
                    }
                    _ => attr::unknown_key(cx, &meta, "#[cache] on a field", FIELD_KEYS)?,
                }
                Ok(())
            });
            cx.ok(parsed);
            if marked.is_set() {
                match id {
                    Some((first, _)) => cx.error_spanned_by(
                        a,
                        format!(
                            "a second #[cache(id)]: `{first}` is already the id, and an entity has exactly one"
                        ),
                    ),
                    None => id = Some((ident, &field.ty)),
                }
            }
        }
    }
    if id.is_none()
        && let Some(fields) = fields
    {
        match fields
            .named
            .iter()
            .find(|f| f.ident.as_ref().is_some_and(|i| i == "id"))
        {
            Some(field) => id = field.ident.as_ref().map(|i| (i, &field.ty)),
            None => cx.error_spanned_by(
                &input.ident,
                format!(
                    "`{}` has no id field: mark it with #[cache(id)], or name it `id`",
                    input.ident
                ),
            ),
        }
    }

    let table = table.get();
    if table.is_none() && !table_attempted {
        cx.error_spanned_by(
            &input.ident,
            format!(
                "missing #[cache(table = \"...\")] on `{}`: name the table its rows are read from",
                input.ident
            ),
        );
    }
    let (id, id_ty) = id?;
    Some(Entity {
        input,
        table: table?,
        id,
        id_ty,
        ttl: ttl.get(),
    })
}

fn generate(entity: &Entity) -> TokenStream {
    let private = Private;
    let Entity {
        input,
        table,
        id,
        id_ty,
        ttl,
    } = entity;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let default_ttl = ttl.as_ref().map(|ttl| {
        quote! {
            fn default_ttl() -> ::core::option::Option<#private::Ttl> {
                ::core::option::Option::Some(#ttl)
            }
        }
    });
    // Spanned at the field's type: a non-`Serialize` id is reported there.
    let id_assoc = quote::quote_spanned!(id_ty.span()=> type Id = #id_ty;);
    let shared = shared_impls(input);
    quote! {
        #[automatically_derived]
        impl #impl_generics #private::CacheEntity for #ident #ty_generics #where_clause {
            const TABLE: &'static ::core::primitive::str = #table;
            #id_assoc
            fn cache_id(&self) -> &<Self as #private::CacheEntity>::Id {
                &self.#id
            }
            #default_ttl
        }
        #shared
    }
}

/// `EntityTables` (table inference in `#[cached]`) and `LoadOutput` (the bare entity as a
/// cached output), both forwarding to the `CacheEntity` impl.
fn shared_impls(input: &DeriveInput) -> TokenStream {
    let private = Private;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut generics = input.generics.clone();
    // Checked where the entity is returned from a cached function, not here: an entity
    // that is not `Clone + Serialize + Deserialize` still derives, and is reported only
    // if it is cached. (The `for<'__a>` keeps the bound from being checked eagerly.)
    generics
        .make_where_clause()
        .predicates
        .push(syn::parse_quote!(for<'__a> #ident #ty_generics: #private::CacheValue));
    let (_, _, output_where) = generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #private::EntityTables for #ident #ty_generics #where_clause {
            const TABLES: &'static [&'static ::core::primitive::str] =
                &[<Self as #private::CacheEntity>::TABLE];
            fn default_ttl() -> ::core::option::Option<#private::Ttl> {
                <Self as #private::CacheEntity>::default_ttl()
            }
        }
        #[automatically_derived]
        impl #impl_generics #private::LoadOutput for #ident #ty_generics #output_where {
            type Value = Self;
            fn into_value(self) -> ::core::result::Result<Self, Self> {
                ::core::result::Result::Ok(self)
            }
            fn from_value(value: Self) -> Self {
                value
            }
        }
    }
}

/// Emitted beside the errors so that uses of the type do not add errors of their own.
fn fallback(input: &DeriveInput) -> TokenStream {
    let private = Private;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let shared = shared_impls(input);
    quote! {
        #[automatically_derived]
        impl #impl_generics #private::CacheEntity for #ident #ty_generics #where_clause {
            const TABLE: &'static ::core::primitive::str = "";
            type Id = ();
            fn cache_id(&self) -> &() {
                &()
            }
        }
        #shared
    }
}
