//! The analytics routes over a scripted viewing history on the manual clock: every figure checked against
//! values computed by hand from the script below, live and after the stream ended.
//!
//! Script (seconds after the start; `a`, `b` signed in, `g` a guest, the creator `cleo` watching too):
//! t0 cleo and a join · t5 g joins · t20 g leaves · t30 b joins · t40 a clicks the product twice and
//! sends three hearts, b clicks once and sends a like · t65 a leaves · t70 a joins again · t100 the
//! reads · t120 the stream ends.

use crate::support::{START_MS, User, at, call, http, join, native_ws, start, stop, token, topic, until};
use chorus_client::Client;
use chorus_core::store::ManualClock;
use serde_json::{Value, json};

fn set(clock: &ManualClock, secs: u64) {
    clock.set(START_MS + secs * 1000);
}

/// Waits for the creator's next `viewer-count` (past reactions) and checks it: a join's or leave's view
/// is stored by then.
async fn count(creator: &Client, want: u64) {
    assert_eq!(until(creator, "viewer-count").await, want);
}

#[tokio::test]
async fn analytics_of_a_scripted_viewing_history() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let cleo = User::new(&server, "1", "Cleo");
    let product = cleo.product("Lamp", 20.0).await;
    let session = cleo.session("Lamps", std::slice::from_ref(&product)).await;
    cleo.start_stream(&session).await;
    let get = |path: &str| {
        let (addr, token, path) = (server.http_addr, cleo.token.clone(), path.to_owned());
        async move {
            let answer = http(addr, "GET", &path, Some(&token), None).await;
            assert_eq!(answer.status, 200, "{path}: {answer:?}");
            answer.body
        }
    };

    set(&clock, 0);
    let creator = native_ws(&server, Some(&cleo.token)).await;
    join(&creator, &session).await;
    let a = native_ws(&server, Some(&token("10", "Ann", None))).await;
    join(&a, &session).await;
    count(&creator, 1).await;
    set(&clock, 5);
    let g = native_ws(&server, None).await;
    join(&g, &session).await;
    count(&creator, 2).await;
    set(&clock, 20);
    g.close().await;
    count(&creator, 1).await;
    set(&clock, 30);
    let b = native_ws(&server, Some(&token("11", "Bob", None))).await;
    join(&b, &session).await;
    count(&creator, 2).await;
    set(&clock, 40);
    let click = json!({"sessionId": session, "productId": product});
    for (client, clicks, reaction, reactions) in [(&a, 2, "heart", 3), (&b, 1, "like", 1)] {
        for _ in 0..clicks {
            call(client, "commerce.track-product-click", click.clone()).await.expect("click");
        }
        for _ in 0..reactions {
            call(client, "commerce.send-reaction", json!({"sessionId": session, "type": reaction}))
                .await
                .expect("react");
        }
    }
    set(&clock, 65);
    a.unsubscribe(&topic(&session)).await.expect("a leaves");
    count(&creator, 1).await;
    set(&clock, 70);
    join(&a, &session).await;
    count(&creator, 2).await;
    set(&clock, 100);

    // Views: a 65 s, g 15 s, b 70 s (open), a 30 s (open). Unique a, b; peak 2 (t5, t30, t70).
    let report = get(&format!("/api/sessions/{session}/analytics")).await;
    assert_eq!(report["success"], true);
    assert_eq!(report["sessionId"], session.as_str());
    assert_eq!(
        report["session"],
        json!({"title": "Lamps", "status": "live", "creator": {"id": 1}, "createdAt": at(0), "updatedAt": at(0)})
    );
    assert_eq!(
        report["viewers"],
        json!({"unique": 2, "total": 4, "peak": 2, "avgWatchTime": 45, "avgWatchTimeFormatted": "0m 45s"}),
        "(65 + 15 + 70 + 30) / 4"
    );
    assert_eq!(
        report["products"],
        json!({"total": 1, "featured": 0, "list": [{"productId": product, "name": "Lamp", "featured": false, "displayOrder": 0, "addedAt": at(0)}]})
    );
    assert_eq!(report["reactions"], json!({"total": 4, "breakdown": {"heart": 3, "like": 1}}));
    assert_eq!(
        report["engagement"]["viewerTimeline"],
        json!([{"timestamp": "2026-01-22T12:00:00", "joins": 4, "leaves": 2}])
    );
    assert_eq!(
        report["engagement"]["retention"],
        json!({
            "ranges": [
                {"label": "0-30s", "count": 1}, {"label": "30s-1m", "count": 1}, {"label": "1m-5m", "count": 2},
                {"label": "5m-15m", "count": 0}, {"label": "15m-30m", "count": 0}, {"label": "30m+", "count": 0},
            ],
            "median": 30, "medianFormatted": "0m 30s",
            "p75": 65, "p75Formatted": "1m 5s",
            "p90": 70, "p90Formatted": "1m 10s",
        }),
        "sorted 15 30 65 70: nearest ranks 2, 3, 4"
    );

    let live = get(&format!("/api/sessions/{session}/analytics/live")).await;
    assert_eq!(live["data"]["count"], 2);
    let watching: Vec<(Value, Value)> = live["data"]["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["userId"].clone(), v["watchDuration"].clone()))
        .collect();
    assert_eq!(watching, [(json!(11), json!(70)), (json!(10), json!(30))]);
    assert_eq!(live["data"]["publishers"][0]["userId"], 1, "the creator is listed apart");

    let history = get(&format!("/api/sessions/{session}/analytics/viewers?limit=3")).await;
    let data = &history["data"];
    assert_eq!((&data["total"], &data["hasMore"]), (&json!(4), &json!(true)));
    let users: Vec<Value> = data["viewers"].as_array().unwrap().iter().map(|v| v["userId"].clone()).collect();
    assert_eq!(users, [json!(10), json!(11), Value::Null], "newest first; the guest has no userId");
    assert_eq!(data["viewers"][2]["leftAt"], at(20_000));
    assert_eq!(data["viewers"][2]["watchDuration"], 15);
    let rest = get(&format!("/api/sessions/{session}/analytics/viewers?limit=3&offset=3")).await;
    assert_eq!(rest["data"]["viewers"][0]["watchDuration"], 65);
    assert_eq!(rest["data"]["hasMore"], false);

    // t120: the stream ends with a and b watching (viewer count 2 → CTR 2 / 2 × 100); their views close.
    set(&clock, 120);
    cleo.end_stream(&session).await;
    let report = get(&format!("/api/sessions/{session}/analytics")).await;
    assert_eq!(report["viewers"]["avgWatchTime"], 55, "(65 + 15 + 90 + 50) / 4");
    assert_eq!(report["engagement"]["viewerTimeline"][0]["leaves"], 4);
    let dashboard = get("/api/analytics/creator/1").await;
    assert_eq!(dashboard["creatorId"], 1);
    assert_eq!(
        dashboard["data"],
        json!({
            "sessions": {"total": 1, "byStatus": {"live": 0, "ended": 1, "scheduled": 0, "paused": 0}},
            "viewers": {"totalUnique": 2, "averagePerSession": 2, "peakConcurrent": 2},
            "reactions": {"total": 4, "breakdown": {"heart": 3, "like": 1}},
            "products": {"totalClicks": 3, "uniqueUsers": 2, "averageCTR": 100.0},
        })
    );
    let nobody = get("/api/analytics/creator/99").await;
    assert_eq!(nobody["data"]["sessions"]["total"], 0);
    assert_eq!(nobody["data"]["products"]["averageCTR"], 0.0);

    for path in [
        format!("/api/sessions/{session}/analytics"),
        format!("/api/sessions/{session}/analytics/live"),
        format!("/api/sessions/{session}/analytics/viewers"),
        "/api/analytics/creator/1".to_owned(),
    ] {
        let answer = http(server.http_addr, "GET", &path, None, None).await;
        assert_eq!((answer.status, &answer.body["success"]), (401, &json!(false)), "{path} without a token");
    }
    let unknown = http(
        server.http_addr,
        "GET",
        "/api/sessions/00000000-0000-7000-8000-000000000000/analytics",
        Some(&cleo.token),
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);
    let bad = http(
        server.http_addr,
        "GET",
        &format!("/api/sessions/{session}/analytics/viewers?limit=0"),
        Some(&cleo.token),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    stop(server).await;
}
