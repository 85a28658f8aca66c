//! Session ids: 10,000 creates on a real broker give 10,000 distinct 6-digit ids, each a live session.

use std::collections::HashSet;
use std::sync::Arc;

#[tokio::test]
async fn ten_thousand_creates_get_ten_thousand_distinct_six_digit_ids() {
    const CREATES: usize = 10_000;
    const CONCURRENCY: usize = 32;
    let broker = Arc::new(crate::support::start(&["--disable-quic"]).await);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let broker = broker.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for _ in (worker..CREATES).step_by(CONCURRENCY) {
                ids.push(broker.create().await);
            }
            ids
        });
    }
    let mut ids = Vec::with_capacity(CREATES);
    while let Some(batch) = tasks.join_next().await {
        ids.extend(batch.expect("create worker"));
    }
    assert_eq!(ids.len(), CREATES);
    for id in &ids {
        assert!(id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0'), "{id:?}");
    }
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), CREATES, "ids are unique among live sessions");
    for id in ids.iter().step_by(97) {
        assert_eq!(broker.join(id).await.0, 200, "session {id} is live");
    }
}
