use std::rc::Rc;

use cache_runtime::cached;

// The generated future is `Send` exactly when the original is: holding an `Rc` across an
// `.await` is reported at the user's code.
#[cached(table = "users")]
async fn find(id: i64) -> Result<i64, ()> {
    let rc = Rc::new(id);
    std::future::ready(()).await;
    Ok(*rc)
}

fn main() {
    fn assert_send<T: Send>(_: T) {}
    assert_send(find(1));
}
