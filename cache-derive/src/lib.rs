//! Procedural macros for `cache-runtime`. Depend on `cache-runtime`, which re-exports them;
//! this crate is an implementation detail and is pinned by it with an exact version.
//!
//! Each macro parses its input into a checked model (`entity::Entity`, `cached::CachedFn`,
//! `invalidates::Args`), reporting every misuse at once as spanned errors, then generates
//! code that names only `::cache_runtime::__private::...`, `::core::...` and `::std::...`
//! paths.

mod args;
mod attr;
mod body;
mod cache_impl;
mod cached;
mod ctxt;
mod entity;
mod expand;
mod fingerprint;
mod fnv;
mod inline;
mod invalidates;
mod receiver;
mod row_arg;
mod sql;
mod ttl;
mod ttl_grammar;

use proc_macro::TokenStream;

/// Implements `CacheEntity` for a row type: the table it is read from, its id, and
/// optionally the TTL of reads returning it. Also implements `LoadOutput`, so a cached
/// function may return the bare entity.
///
/// | attribute | where | meaning |
/// |---|---|---|
/// | `#[cache(table = "users")]` | struct, required | the table rows are read from |
/// | `#[cache(ttl = "5m")]` | struct, optional | TTL of cached reads returning this type that name none (any `#[cached(ttl)]` form) |
/// | `#[cache(id)]` | one field | the id; defaults to the field named `id` |
///
/// ```
/// use cache_runtime::CacheEntity;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize, CacheEntity)]
/// #[cache(table = "users", ttl = "5m")]
/// struct User {
///     #[cache(id)]
///     user_id: i64,
///     name: String,
/// }
///
/// assert_eq!(User::TABLE, "users");
/// assert_eq!(User { user_id: 7, name: "ada".into() }.cache_id(), &7);
/// assert_eq!(User::default_ttl(), Some(cache_runtime::Ttl::secs(300)));
/// ```
#[proc_macro_derive(CacheEntity, attributes(cache))]
pub fn derive_cache_entity(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    entity::expand(&input).into()
}

/// Caches what an `async fn` returns, keyed by its arguments, until its TTL passes or a
/// write invalidates one of its tables.
///
/// | key | meaning |
/// |---|---|
/// | `ttl = "60s"` / `"1h30m"` / `"250ms"` | expire after that duration (units `ms`, `s`, `m`, `h`, `d`) |
/// | `ttl = 60000` | a number is milliseconds |
/// | `ttl = true` | no expiry: until evicted or invalidated |
/// | `ttl = "2026-09-01T00:00:00Z"` | until that instant (RFC 3339) |
/// | `ttl = false` | bypass: always run the body, store nothing |
/// | `ttl = expr` | anything `Into<Ttl>`, evaluated on every call |
/// | *(no `ttl`)* | the returned entity's `#[cache(ttl)]`, else `Settings::default_ttl` |
/// | `table = "users"` / `tables = ["users", "posts"]` | the tables the query reads; optional when the return type holds a `CacheEntity` (`E`, `Option<E>`, `Vec<E>`, in any `Result`) |
/// | `skip(a, b)` | leave these parameters out of the key |
/// | `key = expr` | the key is this `Serialize` value instead of the parameters |
/// | `cache = expr` | a `&Cache` to use (default: the `&Cache` parameter, else the process-wide cache) |
/// | `name = "users::find"` | the function's identity in keys, stable across renames and moves |
///
/// Each parameter is classified by its type: SQLx pools, connections, transactions and
/// executors (also `impl Executor`, `impl Acquire` and generics bounded by them) and the
/// `&Cache` are not keyed; every other parameter is, and must be `serde::Serialize`. A
/// method is keyed by the fields of `self` its body reads (`self_key = ...` or
/// `skip(self)` to say otherwise). The key also covers a hash of the function's signature
/// and body and its instance (`Self` type, generic arguments), so an edited query never
/// reads the entries of the old one. An `Err` (of any `Result`, aliases included) is
/// never cached.
///
/// A call given a connection that is inside a transaction (the cache's `Transaction`, a
/// `sqlx::Transaction`, or `&mut *tx` in any form) runs its body without reading or
/// filling the cache: a transaction may see its own uncommitted writes, or a snapshot older
/// than what other connections see.
///
/// ```
/// use cache_runtime::{Cache, Settings, cached};
///
/// #[cached(ttl = "60s", table = "users")]
/// async fn user_name(cache: &Cache, id: i64) -> Result<Option<String>, std::io::Error> {
///     Ok(Some(format!("user {id}"))) // a query, in real code
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cache = Cache::new(Settings::default()).unwrap();
/// assert_eq!(user_name(&cache, 1).await?.as_deref(), Some("user 1")); // runs the body
/// assert_eq!(user_name(&cache, 1).await?.as_deref(), Some("user 1")); // from the cache
/// assert_eq!(cache.stats().hits, 1);
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    cached::expand(args.into(), item.into()).into()
}

/// Invalidates tables, in every cache of the process, when an `async fn` write ends:
/// after it returns (`Ok` or `Err`: an error does not prove that nothing was written),
/// and when it panics or its future is dropped once started. Does nothing when the named
/// cache's `Settings::invalidate_on_write` is off.
///
/// A function that takes the cache's `Transaction` (by value, `&` or `&mut`) registers its
/// tables on it instead, before its body runs, and they are invalidated after its
/// `COMMIT` (none on rollback); the parameter is recognised by its type. A plain
/// `sqlx::Transaction` parameter is a compile error: nothing could invalidate after its
/// `COMMIT`.
///
/// | argument | meaning |
/// |---|---|
/// | `User, Post` | entity types: their `CacheEntity::TABLE`s |
/// | `tables = ["users", "posts"]` / `table = "users"` | tables by name |
/// | `cache = expr` | a `&Cache` to use (default: the `&Cache` parameter, else the process-wide cache) |
///
/// ```
/// use cache_runtime::{Cache, Settings, cached, invalidates};
///
/// #[cached(table = "users")]
/// async fn count(cache: &Cache) -> Result<i64, std::io::Error> {
///     Ok(42)
/// }
///
/// #[invalidates(tables = ["users"])]
/// async fn add_user(cache: &Cache, name: &str) -> Result<(), std::io::Error> {
///     Ok(()) // an INSERT, in real code
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cache = Cache::new(Settings::default()).unwrap();
/// count(&cache).await?;
/// add_user(&cache, "ada").await?;
/// count(&cache).await?; // runs again: `users` was written
/// assert_eq!(cache.stats().loads, 2);
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    invalidates::expand(args.into(), item.into()).into()
}

/// Defaults for the `#[cached]` and `#[invalidates]` methods of an `impl` block: the cache
/// they use and how `self` is keyed, written once for a repository instead of on every
/// method. A method that sets a key itself keeps its own.
///
/// | key | meaning |
/// |---|---|
/// | `cache = &self.cache` | the `&Cache` every annotated method uses (methods with `self` only, when it reads `self`) |
/// | `self_key = self.tenant_id` | what keys `self` in every `#[cached]` method, instead of the fields each body reads |
///
/// ```
/// use cache_runtime::{Cache, Settings, cache_impl, cached, invalidates};
///
/// struct Users {
///     cache: Cache,
///     tenant: i64,
/// }
///
/// #[cache_impl(cache = &self.cache)]
/// impl Users {
///     // Keyed by `id` and by `self.tenant`, which the body reads.
///     #[cached(table = "users")]
///     async fn name(&self, id: i64) -> Result<String, std::io::Error> {
///         Ok(format!("user {id} of tenant {}", self.tenant))
///     }
///
///     #[invalidates(tables = ["users"])]
///     async fn rename(&self, id: i64) -> Result<(), std::io::Error> {
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cache = Cache::new(Settings::default()).unwrap();
/// let (a, b) = (Users { cache: cache.clone(), tenant: 1 }, Users { cache, tenant: 2 });
/// assert_eq!(a.name(7).await?, "user 7 of tenant 1");
/// assert_eq!(b.name(7).await?, "user 7 of tenant 2"); // another tenant, another key
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
#[proc_macro_attribute]
pub fn cache_impl(args: TokenStream, item: TokenStream) -> TokenStream {
    cache_impl::expand(args.into(), item.into()).into()
}

/// Caches one inline sqlx query: `cached_query!(ttl = .., <query>.fetch_*(executor))`
/// evaluates to a future of the fetch's result, read through the cache.
///
/// - The query is an sqlx macro (`query_as!`, `query_scalar!` and their `_unchecked`
///   forms) or function (`sqlx::query_as("..")`, `sqlx::query_scalar("..")` with
///   `.bind(..)`s), ended by `.fetch_one(..)`, `.fetch_optional(..)` or `.fetch_all(..)`.
/// - The key is the SQL and every bound argument (each `Serialize`); the tables are those
///   the SQL reads (or `tables = [...]`, checked against it, plus `also = [...]`).
/// - `ttl` takes every form `#[cached]` does (default: `Settings::default_ttl`); `cache =
///   expr` names the cache (default: the process-wide one).
/// - As with `#[cached]`: an executor inside a transaction runs the query uncached, and
///   errors are never cached. Each argument and the executor are evaluated once.
///
/// ```ignore
/// let user: Option<User> = cached_query!(
///     ttl = "60s",
///     sqlx::query_as!(User, "SELECT id, name FROM users WHERE id = $1", id)
///         .fetch_optional(&pool)
/// )
/// .await?;
/// ```
#[proc_macro]
pub fn cached_query(input: TokenStream) -> TokenStream {
    inline::expand(input.into()).into()
}
