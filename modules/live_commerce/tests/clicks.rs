//! Product clicks on paused time: unique and total clicks, CTR, the top 5, the 4-second cadence, only
//! when something changed, nothing while not live, and the timer gone once the stream ends.

use crate::support::{User, at, call, expect, join, native_ws, start, stop, token, until};
use chorus_client::Client;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

fn stat(product: &str, unique: u64, total: u64, rate: f64) -> Value {
    json!({"productId": product, "uniqueClicks": unique, "totalClicks": total, "clickThroughRate": rate})
}

async fn click(client: &Client, session: &str, product: &str) {
    call(client, "commerce.track-product-click", json!({"sessionId": session, "productId": product, "userId": null}))
        .await
        .expect("click accepted");
}

#[tokio::test]
async fn clicks_are_broadcast_every_four_seconds_while_live_and_only_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let creator = User::new(&server, "1", "Cleo");
    let mut p = Vec::new();
    for i in 1..=6 {
        p.push(creator.product(&format!("Product {i}"), 10.0 * f64::from(i)).await);
    }
    let session = creator.session("Show", &p).await;
    let dashboard = native_ws(&server, Some(&creator.token)).await;
    join(&dashboard, &session).await;
    let mut viewers = Vec::new();
    for i in 2..=5 {
        let v = native_ws(&server, Some(&token(&i.to_string(), "V", None))).await;
        join(&v, &session).await;
        assert_eq!(expect(&dashboard, "viewer-count").await, json!(viewers.len() + 1));
        viewers.push(v);
    }

    // Not live: refused. A product of another session: refused.
    let refused =
        call(&viewers[0], "commerce.track-product-click", json!({"sessionId": session, "productId": p[0]})).await;
    assert_eq!(refused, Err((2009, "Product clicks are tracked only while the session is live".into())));
    creator.start_stream(&session).await;
    expect(&dashboard, "stream-started").await;
    let foreign = creator.product("Elsewhere", 1.0).await;
    let refused =
        call(&viewers[0], "commerce.track-product-click", json!({"sessionId": session, "productId": foreign})).await;
    assert_eq!(refused, Err((2009, "Product is not part of this session".into())));

    tokio::time::pause();
    let first_click = Instant::now();
    // Unique clickers: p1 3, p2 2 (4 clicks), p3 2, p4 1, p5 1 (3 clicks), p6 1.
    for (viewer, products) in [(0, vec![0, 1, 1, 2, 3, 4, 4, 4]), (1, vec![0, 1, 1, 2]), (2, vec![0, 5])] {
        for product in products {
            click(&viewers[viewer], &session, &p[product]).await;
        }
    }
    let stats = expect(&dashboard, "product-click-stats").await;
    let waited = first_click.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_millis(4500),
        "first broadcast after {waited:?}"
    );
    let all = [
        stat(&p[0], 3, 3, 75.0),
        stat(&p[1], 2, 4, 50.0),
        stat(&p[2], 2, 2, 50.0),
        stat(&p[3], 1, 1, 25.0),
        stat(&p[4], 1, 3, 25.0),
        stat(&p[5], 1, 1, 25.0),
    ];
    assert_eq!(stats, json!({"sessionId": session, "productStats": all, "totalViewers": 4, "timestamp": at(0)}));
    let top = [all[0].clone(), all[1].clone(), all[2].clone(), all[4].clone(), all[3].clone()];
    assert_eq!(
        expect(&dashboard, "trending-products").await,
        json!({"sessionId": session, "products": top, "timestamp": at(0)})
    );
    let broadcast_at = Instant::now();
    // Every subscriber gets them, viewers included.
    assert_eq!(until(&viewers[3], "product-click-stats").await, stats);

    // Nothing changes: nothing is sent for three periods.
    assert!(
        tokio::time::timeout(Duration::from_secs(13), dashboard.next_event()).await.is_err(),
        "no broadcast without a change"
    );

    // One more unique clicker on p6: the next broadcast is on the 4-second beat, and p6 ties p3 (display
    // order decides).
    click(&viewers[3], &session, &p[5]).await;
    let stats = expect(&dashboard, "product-click-stats").await;
    let since = broadcast_at.elapsed().as_millis();
    assert!(since % 4000 < 100 && since >= 16_000, "broadcast {since} ms after the first");
    assert_eq!(stats["productStats"][5], stat(&p[5], 2, 2, 50.0));
    let trending = expect(&dashboard, "trending-products").await;
    let order: Vec<&str> =
        trending["products"].as_array().unwrap().iter().map(|s| s["productId"].as_str().unwrap()).collect();
    assert_eq!(order, [&p[0], &p[1], &p[2], &p[5], &p[4]]);
    // The live conversion figures are the same.
    tokio::time::resume();
    let live = creator.call("GET", &format!("/api/sessions/{session}/conversion-stats"), None).await;
    assert_eq!(live.body["sessionStatus"], "live");
    assert_eq!(live.body["data"], json!({"totalViewers": 4, "products": stats["productStats"]}));

    // Pausing the session stops the broadcasts; so does ending it.
    creator.status(&session, "paused").await;
    let refused =
        call(&viewers[0], "commerce.track-product-click", json!({"sessionId": session, "productId": p[0]})).await;
    assert_eq!(refused.map_err(|(c, _)| c), Err(2009));
    creator.status(&session, "live").await;
    expect(&dashboard, "stream-started").await;
    creator.end_stream(&session).await;
    assert_eq!(expect(&dashboard, "viewer-count").await, json!(0));
    expect(&dashboard, "stream-ended").await;
    tokio::time::pause();
    assert!(
        tokio::time::timeout(Duration::from_secs(30), dashboard.next_event()).await.is_err(),
        "no timer after the end"
    );
    tokio::time::resume();

    // Persisted at the end: unique and total clicks with the rate over the final viewer count.
    let ended = creator.call("GET", &format!("/api/sessions/{session}/conversion-stats"), None).await;
    assert_eq!(ended.body["sessionStatus"], "ended");
    assert_eq!(ended.body["data"]["totalViewers"], 4);
    let products = ended.body["data"]["products"].as_array().unwrap();
    let figures: Vec<(Value, Value, Value, Value, Value)> = products
        .iter()
        .map(|s| {
            (
                s["productId"].clone(),
                s["productName"].clone(),
                s["uniqueClicks"].clone(),
                s["totalClicks"].clone(),
                s["clickThroughRate"].clone(),
            )
        })
        .collect();
    let names = ["Product 1", "Product 2", "Product 3", "Product 4", "Product 5", "Product 6"];
    let expected: Vec<(Value, Value, Value, Value, Value)> =
        [(3, 3, 75.0), (2, 4, 50.0), (2, 2, 50.0), (1, 1, 25.0), (1, 3, 25.0), (2, 2, 50.0)]
            .iter()
            .enumerate()
            .map(|(i, (u, t, r))| (json!(p[i]), json!(names[i]), json!(u), json!(t), json!(r)))
            .collect();
    assert_eq!(figures, expected);
    assert!(products.iter().all(|s| s["createdAt"] == at(0) && s["updatedAt"] == at(0)));
    stop(server).await;
}
