//! The row both benchmarks cache, so their figures are for the same value.

use serde::{Deserialize, Serialize};

/// A typical ~200-byte row (223 bytes as rmp-serde with field names).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub bio: String,
    pub created_at: i64,
    pub score: f64,
    pub active: bool,
}

pub fn row(id: i64) -> Row {
    Row {
        id,
        name: "Ada Lovelace".into(),
        email: "ada.lovelace@analytical.engine".into(),
        bio: "Wrote the first algorithm intended for a machine; translated and annotated \
              Menabrea's memoir on the Analytical Engine."
            .into(),
        created_at: 1_700_000_000,
        score: 97.5,
        active: true,
    }
}
