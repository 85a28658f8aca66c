//! `/api/search*` on a real broker: text matching and ranking, filters, sort orders, paging over 1,000
//! sessions with `hasMore`, the live/upcoming/trending/creator lists, and refused parameters.

use crate::support::{User, http, join, native_ws, start, stop, token};
use serde_json::{Value, json};
use std::time::Duration;

fn titles(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        .iter()
        .map(|s| s["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sessions_and_products_are_found_ranked_filtered_and_paged() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = start(dir.path()).await;
    let ann = User::new(&server, "1", "Ann");
    let bob = User::new(&server, "2", "Bob");
    let sessions = [
        (&ann, "Cooking with retro pans", "kitchen", "cooking", vec!["pans"]),
        (&bob, "Retro gaming night", "old consoles", "gaming", vec!["snes"]),
        (&ann, "Night market", "street food and a retro arcade", "cooking", vec![]),
        (&bob, "Tech talk", "keyboards", "tech", vec!["retro"]),
    ];
    for (user, title, description, category, tags) in sessions {
        let body = json!({"title": title, "description": description, "category": category, "tags": tags});
        assert_eq!(user.call("POST", "/api/sessions", Some(body)).await.status, 201);
        clock.advance(Duration::from_secs(1));
    }
    let get = |path: String| {
        let addr = server.http_addr;
        async move { http(addr, "GET", &path, None, None).await }
    };

    // Relevance: title start, then title, then tag/category, then description; newest first otherwise.
    let answer = get("/api/search/sessions?q=RETRO&sortBy=relevance".into()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        titles(&answer.body, "data"),
        ["Retro gaming night", "Cooking with retro pans", "Tech talk", "Night market"]
    );
    assert_eq!((answer.body["total"].as_u64(), answer.body["hasMore"].as_bool()), (Some(4), Some(false)));
    assert_eq!(answer.body["success"], true);
    let answer = get("/api/search/sessions?q=retro".into()).await;
    assert_eq!(
        titles(&answer.body, "data"),
        ["Tech talk", "Night market", "Retro gaming night", "Cooking with retro pans"]
    );
    let answer = get("/api/search/sessions?sortBy=title&category=COOKING".into()).await;
    assert_eq!(titles(&answer.body, "data"), ["Cooking with retro pans", "Night market"]);
    let answer = get("/api/search/sessions?creatorId=2&sortBy=oldest".into()).await;
    assert_eq!(titles(&answer.body, "data"), ["Retro gaming night", "Tech talk"]);
    let answer = get("/api/search/sessions?q=retro&limit=2&offset=1&sortBy=oldest".into()).await;
    assert_eq!(titles(&answer.body, "data"), ["Retro gaming night", "Night market"]);
    assert_eq!(
        (&answer.body["total"], &answer.body["limit"], &answer.body["offset"], &answer.body["hasMore"]),
        (&json!(4), &json!(2), &json!(1), &json!(true))
    );
    assert_eq!(
        titles(&get("/api/search/sessions/creator/1".into()).await.body, "data"),
        ["Night market", "Cooking with retro pans"]
    );
    assert_eq!(get("/api/search/sessions/upcoming?limit=1".into()).await.body["hasMore"], true);

    for (name, price) in [("Retro lamp", 30.0), ("Desk", 120.0), ("Lamp shade", 12.5), ("Mug", 8.0)] {
        let body = json!({"name": name, "description": "for a retro room", "price": price});
        assert_eq!(ann.call("POST", "/api/products", Some(body)).await.status, 201);
    }
    let names = |body: &Value| -> Vec<String> {
        body["data"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
    };
    let answer = get("/api/search/products?q=lamp&sortBy=price-asc".into()).await;
    assert_eq!(names(&answer.body), ["Lamp shade", "Retro lamp"]);
    let answer = get("/api/search/products?minPrice=10&maxPrice=100&sortBy=price-desc".into()).await;
    assert_eq!(names(&answer.body), ["Retro lamp", "Lamp shade"]);
    assert_eq!(names(&get("/api/search/products?sortBy=name&limit=2".into()).await.body), ["Desk", "Lamp shade"]);
    assert_eq!(
        names(&get("/api/search/products?q=lamp&sortBy=relevance".into()).await.body),
        ["Lamp shade", "Retro lamp"]
    );

    let answer = get("/api/search?q=retro&limit=2".into()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(titles(&answer.body, "sessions"), ["Retro gaming night", "Cooking with retro pans"]);
    assert_eq!(answer.body["products"][0]["name"], "Retro lamp", "the name match ranks first");
    assert_eq!(answer.body["counts"], json!({"sessions": 4, "products": 4}));

    for (path, message) in [
        ("/api/search", "q is required"),
        ("/api/search?q=%20", "q is required"),
        ("/api/search/sessions?limit=0", "limit must be a whole number from 1 to 100"),
        ("/api/search/sessions?limit=101", "limit must be a whole number from 1 to 100"),
        ("/api/search/sessions?offset=-1", "offset must be a whole number ≥ 0"),
        ("/api/search/sessions?status=over", "status must be one of live, scheduled, paused, ended"),
        ("/api/search/sessions?sortBy=best", "sortBy must be one of newest, oldest, title, relevance"),
        ("/api/search/products?minPrice=cheap", "minPrice must be a number ≥ 0"),
        ("/api/search/products?minPrice=5&maxPrice=1", "minPrice must not be above maxPrice"),
    ] {
        let answer = get(path.into()).await;
        assert_eq!((answer.status, answer.body["message"].as_str()), (400, Some(message)), "{path}: {answer:?}");
        assert_eq!(answer.body["success"], false);
    }
    stop(server).await;
}

#[tokio::test]
async fn a_thousand_sessions_page_to_the_end_and_live_ones_trend_by_viewers() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let ann = User::new(&server, "1", "Ann");
    for i in 0..1_000 {
        let answer = ann.call("POST", "/api/sessions", Some(json!({"title": format!("Show {i:04}")}))).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let path = format!("/api/search/sessions?q=show&sortBy=oldest&limit=100&offset={offset}");
        let answer = http(server.http_addr, "GET", &path, None, None).await;
        assert_eq!(answer.body["total"], 1_000);
        seen.extend(titles(&answer.body, "data"));
        offset += 100;
        if answer.body["hasMore"] == false {
            break;
        }
    }
    let expected: Vec<String> = (0..1_000).map(|i| format!("Show {i:04}")).collect();
    assert_eq!(seen, expected, "every session once, in order, and hasMore false on the last page");

    let quiet = ann.session("Quiet", &[]).await;
    let busy = ann.session("Busy", &[]).await;
    ann.start_stream(&quiet).await;
    ann.start_stream(&busy).await;
    let mut viewers = Vec::new();
    for sub in ["10", "11"] {
        let client = native_ws(&server, Some(&token(sub, sub, None))).await;
        join(&client, &busy).await;
        viewers.push(client);
    }
    let answer = http(server.http_addr, "GET", "/api/search/sessions/trending", None, None).await;
    assert_eq!(titles(&answer.body, "data"), ["Busy", "Quiet"]);
    assert_eq!(
        (answer.body["data"][0]["viewerCount"].as_u64(), answer.body["data"][1]["viewerCount"].as_u64()),
        (Some(2), Some(0))
    );
    let live = http(server.http_addr, "GET", "/api/search/sessions/live", None, None).await;
    assert_eq!(live.body["total"], 2);
    stop(server).await;
}
