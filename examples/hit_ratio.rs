//! Hit ratio under writes: whole-table invalidation against row-level invalidation, on a
//! read/write mix shaped like the RealWorld app's (articles read by a Zipf, favorites and
//! comments written on random rows), in one run on one SQLite database.
//!
//! ```text
//! cargo run --release --example hit_ratio [-- <operations>]
//! ```
//!
//! The same sequence of operations runs twice, against a cache with `row_level` off and one
//! with it on; every read is also checked against the database.

use cache_runtime::{Cache, Settings, cached, invalidates};
use sqlx::SqlitePool;

const ARTICLES: u64 = 1_000;
/// Zipf exponent of article popularity (1.0: the classic web-traffic shape).
const ZIPF: f64 = 1.0;

type Article = (i64, String, i64);

#[cached(ttl = "10m")]
async fn article(cache: &Cache, pool: &SqlitePool, id: i64) -> sqlx::Result<Option<Article>> {
    sqlx::query_as("SELECT id, title, favorites FROM articles WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

#[cached(ttl = "10m")]
async fn popular(cache: &Cache, pool: &SqlitePool) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as("SELECT id, title FROM articles ORDER BY favorites DESC, id LIMIT 20")
        .fetch_all(pool)
        .await
}

#[cached(ttl = "10m")]
async fn comments(cache: &Cache, pool: &SqlitePool, article: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT body FROM comments WHERE article_id = ? ORDER BY id")
        .bind(article)
        .fetch_all(pool)
        .await
}

/// A favorite: the counter of one article.
#[invalidates]
async fn favorite(cache: &Cache, pool: &SqlitePool, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE articles SET favorites = favorites + 1 WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// A comment: a new row whose id the database picks.
#[invalidates]
async fn comment(cache: &Cache, pool: &SqlitePool, article: i64, body: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO comments (article_id, body) VALUES (?, ?)")
        .bind(article)
        .bind(body)
        .execute(pool)
        .await?;
    Ok(())
}

/// An author edits one article.
#[invalidates]
async fn edit(cache: &Cache, pool: &SqlitePool, id: i64, title: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE articles SET title = ? WHERE id = ?")
        .bind(title)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Article(i64),
    Popular,
    Comments(i64),
    Favorite(i64),
    Comment(i64),
    Edit(i64),
}

/// xorshift64*: a fixed sequence, the same for both runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The mix: 90% reads (article pages by a Zipf, their comments, the popular list), 10%
/// writes (favorites and comments on articles picked by the same Zipf, a few edits on
/// uniformly random articles).
fn operations(n: usize) -> Vec<Op> {
    let weights: Vec<f64> = (1..=ARTICLES)
        .map(|k| 1.0 / (k as f64).powf(ZIPF))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(weights.len());
    let mut sum = 0.0;
    for w in weights {
        sum += w / total;
        cumulative.push(sum);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let zipf = |rng: &mut Rng| {
        let u = rng.unit();
        cumulative.partition_point(|c| *c < u) as i64 + 1
    };
    (0..n)
        .map(|_| {
            let roll = rng.next() % 100;
            match roll {
                0..=59 => Op::Article(zipf(&mut rng)),
                60..=79 => Op::Comments(zipf(&mut rng)),
                80..=89 => Op::Popular,
                90..=95 => Op::Favorite(zipf(&mut rng)),
                96..=98 => Op::Comment(zipf(&mut rng)),
                _ => Op::Edit((rng.next() % ARTICLES) as i64 + 1),
            }
        })
        .collect()
}

async fn database() -> sqlx::Result<SqlitePool> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    sqlx::query(
        "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, \
         favorites INTEGER NOT NULL DEFAULT 0)",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "CREATE TABLE comments (id INTEGER PRIMARY KEY, article_id INTEGER NOT NULL, \
         body TEXT NOT NULL)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("CREATE INDEX comments_article ON comments (article_id)")
        .execute(&pool)
        .await?;
    for id in 1..=ARTICLES as i64 {
        sqlx::query("INSERT INTO articles (id, title) VALUES (?, ?)")
            .bind(id)
            .bind(format!("article {id}"))
            .execute(&pool)
            .await?;
    }
    Ok(pool)
}

struct Outcome {
    hits: u64,
    misses: u64,
    article_hits: u64,
    article_reads: u64,
}

async fn run(row_level: bool, ops: &[Op]) -> Result<Outcome, Box<dyn std::error::Error>> {
    let pool = database().await?;
    let cache = Cache::new(Settings {
        row_level,
        ..Settings::default()
    })?;
    let (mut article_hits, mut article_reads) = (0, 0);
    for op in ops {
        match *op {
            Op::Article(id) => {
                let hits = cache.stats().hits;
                let got = article(&cache, &pool, id).await?;
                article_reads += 1;
                article_hits += cache.stats().hits - hits;
                let truth: Option<Article> =
                    sqlx::query_as("SELECT id, title, favorites FROM articles WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&pool)
                        .await?;
                assert_eq!(got, truth, "a stale read of article {id}");
            }
            Op::Popular => drop(popular(&cache, &pool).await?),
            Op::Comments(id) => drop(comments(&cache, &pool, id).await?),
            Op::Favorite(id) => favorite(&cache, &pool, id).await?,
            Op::Comment(id) => comment(&cache, &pool, id, "nice").await?,
            Op::Edit(id) => edit(&cache, &pool, id, "edited").await?,
        }
    }
    let stats = cache.stats();
    Ok(Outcome {
        hits: stats.hits,
        misses: stats.misses,
        article_hits,
        article_reads,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    let ops = operations(n);
    println!(
        "{n} operations over {ARTICLES} articles (Zipf {ZIPF}): 60% article, 20% comments, \
         10% popular list, 6% favorite, 3% comment, 1% edit"
    );
    println!("{:<12} {:>10} {:>14}", "", "hit ratio", "article pages");
    let mut ratios = Vec::new();
    for row_level in [false, true] {
        let o = run(row_level, &ops).await?;
        let ratio = o.hits as f64 / (o.hits + o.misses).max(1) as f64;
        let pages = o.article_hits as f64 / o.article_reads.max(1) as f64;
        let name = if row_level {
            "row-level"
        } else {
            "table-level"
        };
        println!(
            "{name:<12} {:>9.1}% {:>13.1}%",
            100.0 * ratio,
            100.0 * pages
        );
        ratios.push(ratio);
    }
    println!(
        "row-level / table-level: {:.2}x",
        ratios[1] / ratios[0].max(f64::EPSILON)
    );
    Ok(())
}
