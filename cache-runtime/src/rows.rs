//! Row-level invalidation: reads of one row by its id follow that row, not the whole table.
//!
//! A table `articles` has, besides its own tag (`articles`, followed by every read that
//! can include any row: lists, counts, joins), a tag for all its rows (`articles#`) and one
//! per row bucket (`articles#417`). A read of one row by id is tagged with `articles#` and
//! its bucket, not with `articles`. Then:
//!
//! - a write whose rows are known (`UPDATE articles … WHERE id = $1`, `DELETE … WHERE id =
//!   $1`, `INSERT` of one row with its id) bumps `articles` and the buckets of its rows:
//!   lists go stale, reads of other rows stay fresh;
//! - every other write to the table ([`Cache::invalidate`](crate::Cache::invalidate), a
//!   database event, a transaction's commit, SQL whose rows the macro cannot tell) bumps
//!   `articles` and `articles#`: every read of the table goes stale, as before.
//!
//! Ids are integers: two integers are equal exactly when the database says so, whatever
//! their Rust type, while strings compare by collation (`'ABC' = 'abc'` in MySQL) and
//! would need the database's rules. A read or write whose id is anything else follows the
//! table. Rows share [`ROW_BUCKETS`] buckets per table, fixed by this crate (every process
//! sharing a backend must agree on them): the tags a table can have are bounded, in
//! process memory and in a shared backend, and two rows sharing a bucket only cost hits.

/// How many row buckets a table has. Part of the entry format: changing it changes which
/// tag a row's reads carry, so it changes only with the namespace's format.
pub const ROW_BUCKETS: u64 = 1024;

/// An id a read or write names a row by: the integer types, by value or behind a reference.
///
/// Implement it for a newtype id whose column holds that integer:
///
/// ```
/// use cache_runtime::RowId;
///
/// #[derive(Clone, Copy, serde::Serialize)]
/// struct ArticleId(i64);
///
/// impl RowId for ArticleId {
///     fn row_id(&self) -> i128 {
///         i128::from(self.0)
///     }
/// }
/// ```
pub trait RowId {
    /// The id, as the database compares it.
    fn row_id(&self) -> i128;
}

macro_rules! row_ids {
    ($($t:ty),*) => {$(
        impl RowId for $t {
            #[inline]
            fn row_id(&self) -> i128 {
                i128::from(*self)
            }
        }
    )*};
}
row_ids!(i8, i16, i32, i64, i128, u8, u16, u32, u64);

impl<T: RowId + ?Sized> RowId for &T {
    #[inline]
    fn row_id(&self) -> i128 {
        (**self).row_id()
    }
}

impl<T: RowId + ?Sized> RowId for &mut T {
    #[inline]
    fn row_id(&self) -> i128 {
        (**self).row_id()
    }
}

impl<T: RowId + ?Sized> RowId for Box<T> {
    #[inline]
    fn row_id(&self) -> i128 {
        (**self).row_id()
    }
}

/// The bucket of the row `id`: a fixed mix of the integer, the same in every process.
#[inline]
pub(crate) fn bucket(id: i128) -> u32 {
    // splitmix64 over both halves: ids that differ in any bit spread over the buckets.
    let mut z = (id as u64) ^ ((id >> 64) as u64).rotate_left(32);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % ROW_BUCKETS) as u32
}

/// The tag every read of one row of `table` carries: `"{table}#"`.
pub(crate) fn all_rows(table: &str) -> String {
    let mut name = String::with_capacity(table.len() + 1);
    name.push_str(table);
    name.push('#');
    name
}

/// The tag of the bucket of row `id` of `table`: `"{table}#{bucket}"`.
pub(crate) fn row(table: &str, id: i128) -> String {
    format!("{table}#{}", bucket(id))
}

/// The tags of a read of the row `id` of `table`, for [`Cache::get_or_load`]
/// (the macros pass them for a read by id they can see in the SQL).
///
/// ```
/// use cache_runtime::{Cache, KeyScope, Settings, Ttl, row_tags};
///
/// static FIND: KeyScope = KeyScope::new("articles::find");
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cache = Cache::new(Settings { row_level: true, ..Settings::default() })?;
/// let tags = row_tags("articles", 7_i64);
/// let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
/// let load = || async { Ok::<_, std::io::Error>(Some("article 7".to_owned())) };
/// cache.get_or_load(cache.key(&FIND, &7_i64)?, &tags, Ttl::secs(60), load).await?;
///
/// cache.invalidate_rows("articles", &[8_i64]).await;   // another row: still a hit
/// cache.get_or_load(cache.key(&FIND, &7_i64)?, &tags, Ttl::secs(60), load).await?;
/// assert_eq!(cache.stats().hits, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
///
/// [`Cache::get_or_load`]: crate::Cache::get_or_load
pub fn row_tags(table: &str, id: impl RowId) -> [String; 2] {
    [all_rows(table), row(table, id.row_id())]
}

/// Whether `name` is a table's own name, not one of its row tags.
#[inline]
pub(crate) fn is_table(name: &str) -> bool {
    !name.contains('#')
}

/// The rows a write touches, per table (found before a macro's write runs): what every
/// invalidation names. For the tables it has none for, or one it could not tell, the
/// write invalidates the whole table, its all-rows tag included.
#[derive(Default, Debug)]
pub struct WrittenRows<'a> {
    rows: Vec<(&'a str, Option<i128>)>,
}

impl<'a> WrittenRows<'a> {
    /// No rows known: every table is invalidated whole.
    #[inline]
    pub const fn new() -> WrittenRows<'a> {
        WrittenRows { rows: Vec::new() }
    }

    /// The write touches the row `id` of `table` (`None`: a row whose id is not an
    /// integer, so the whole table).
    pub fn add(&mut self, table: &'a str, id: Option<i128>) {
        self.rows.push((table, id));
    }

    /// The write inserts the row `id` of `table`: as [`WrittenRows::add`], except that an
    /// id of 0 is no row (MySQL gives a row inserted with id 0 the next `AUTO_INCREMENT` id).
    pub fn add_inserted(&mut self, table: &'a str, id: Option<i128>) {
        self.add(table, id.filter(|id| *id != 0));
    }

    /// What the write invalidates: each of `tables`, and the buckets of its rows when they
    /// are all known and `row_level` is on, else its all-rows tag.
    pub(crate) fn names(&self, tables: &[&str], row_level: bool) -> Vec<String> {
        let mut names = Vec::with_capacity(2 * tables.len());
        for table in tables {
            names.push((*table).to_owned());
            if !is_table(table) {
                continue;
            }
            let mut ids = self.rows.iter().filter(|(t, _)| t == table).peekable();
            let known =
                ids.peek().is_some() && self.rows.iter().all(|(t, id)| t != table || id.is_some());
            if !(row_level && known) {
                names.push(all_rows(table));
                continue;
            }
            for id in ids.filter_map(|(_, id)| *id) {
                let tag = row(table, id);
                if !names.contains(&tag) {
                    names.push(tag);
                }
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tags_name_the_table() {
        assert_eq!(all_rows("articles"), "articles#");
        assert!(row("articles", 7).starts_with("articles#"));
        assert_eq!(row("articles", 7), row("articles", 7));
        assert_eq!(
            WrittenRows::new().names(&["articles", "articles#3"], true),
            ["articles", "articles#", "articles#3"]
        );
    }

    proptest! {
        /// The same integer gives the same bucket whatever its Rust type: a read binding an
        /// `i32` and a write binding an `i64` meet.
        #[test]
        fn one_integer_one_bucket_whatever_its_type(v in any::<i32>()) {
            let b = bucket(RowId::row_id(&v));
            prop_assert_eq!(b, bucket(RowId::row_id(&i64::from(v))));
            prop_assert_eq!(b, bucket(RowId::row_id(&&i64::from(v))));
            prop_assert!(u64::from(b) < ROW_BUCKETS);
            if let Ok(u) = u64::try_from(v) {
                prop_assert_eq!(b, bucket(u.row_id()));
            }
        }
    }

    /// Consecutive ids spread: a write to one article leaves nearly all others fresh.
    #[test]
    fn consecutive_ids_spread_over_the_buckets() {
        let used: std::collections::HashSet<u32> = (0..1024_i128).map(bucket).collect();
        assert!(used.len() > 600, "{} buckets of 1024", used.len());
    }
}
