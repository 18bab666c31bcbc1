// `Result` is recognised through any alias: its `Err` passes through uncached, and an
// entity inside it still names the table.
use cache_runtime::{CacheEntity, cached, invalidates};
use serde::{Deserialize, Serialize};

#[derive(Debug)]
pub struct MyError;

pub type MyResult<T> = Result<T, MyError>;
pub type Fixed = Result<Option<Row>, MyError>;

#[derive(Clone, Serialize, Deserialize, CacheEntity)]
#[cache(table = "result_aliases_rows")]
pub struct Row {
    id: i64,
}

#[cached]
async fn user_alias(id: i64) -> MyResult<Vec<Row>> {
    Ok(vec![Row { id }])
}

#[cached]
async fn fixed_alias(id: i64) -> Fixed {
    if id < 0 { Err(MyError) } else { Ok(None) }
}

#[cached]
async fn sqlx_alias(id: i64) -> sqlx::Result<Row> {
    Ok(Row { id })
}

#[cached(table = "result_aliases_rows")]
async fn with_question_mark(text: String) -> MyResult<i64> {
    let n: i64 = text.parse().map_err(|_| MyError)?;
    if n == 0 {
        return Err(MyError);
    }
    Ok(n)
}

#[invalidates(Row)]
async fn write(fail: bool) -> MyResult<()> {
    if fail { Err(MyError) } else { Ok(()) }
}

#[tokio::test]
async fn compiles_and_runs() {
    assert_eq!(user_alias(1).await.unwrap().len(), 1);
    assert!(fixed_alias(-1).await.is_err());
    assert!(sqlx_alias(1).await.is_ok());
    assert!(with_question_mark("x".into()).await.is_err());
    assert_eq!(with_question_mark("3".into()).await.unwrap(), 3);
    assert!(write(true).await.is_err());
}
