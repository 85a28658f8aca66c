//! The REST slice: products, sessions with their products, owner-only status, and the showcase — over
//! REST and as a call — with its refusals and broadcasts.

use crate::support::{User, at, call, expect, http, join, native_ws, start, stop, token};
use serde_json::json;

#[tokio::test]
async fn products_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let seller = User::new(&server, "1", "Cleo");

    let created = seller
        .call("POST", "/api/products", Some(json!({"name": "Gaming Mouse", "description": "High precision", "price": 59.99, "imageUrl": "https://img/m.png"})))
        .await;
    assert_eq!(created.status, 201);
    let mouse = created.body["data"]["id"].as_str().unwrap().to_owned();
    let product = json!({
        "id": mouse, "name": "Gaming Mouse", "description": "High precision", "price": 59.99,
        "imageUrl": "https://img/m.png", "sellerId": 1, "createdAt": at(0), "updatedAt": at(0)
    });
    assert_eq!(created.body, json!({"success": true, "message": "Product created successfully", "data": product}));
    assert_eq!(
        seller.call("GET", &format!("/api/products/{mouse}"), None).await.body,
        json!({"success": true, "data": product})
    );
    let missing = seller.call("GET", "/api/products/nope", None).await;
    assert_eq!((missing.status, missing.body), (404, json!({"success": false, "message": "Product not found"})));
    let bad = seller.call("POST", "/api/products", Some(json!({"name": "x", "description": "y"}))).await;
    assert_eq!((bad.status, bad.body["message"].clone()), (400, json!("price is required")));
    let anon = http(server.http_addr, "POST", "/api/products", None, Some(&json!({}))).await;
    assert_eq!(anon.status, 401);
    let keyboard = seller.product("Gaming Keyboard", 129.99).await;

    // A session links the creator's own products, in order.
    let body = json!({"title": "Live Gaming Session", "description": "Playing", "category": "gaming", "tags": ["fps"], "productIds": [keyboard, mouse]});
    let created = seller.call("POST", "/api/sessions", Some(body)).await;
    assert_eq!((created.status, created.body["message"].clone()), (201, json!("Session created successfully")));
    let data = &created.body["data"];
    let id = data["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            data["title"].clone(),
            data["status"].clone(),
            data["creatorId"].clone(),
            data["activeProductId"].clone(),
            data["agoraChannelName"].clone()
        ),
        (json!("Live Gaming Session"), json!("scheduled"), json!(1), json!(null), json!(id))
    );
    let details = seller.call("GET", &format!("/api/sessions/{id}"), None).await.body["data"].clone();
    let names: Vec<&str> =
        details["products"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Gaming Keyboard", "Gaming Mouse"]);
    assert_eq!(details["activeProduct"], json!(null));

    let other = User::new(&server, "2", "Bob");
    let foreign = other.call("POST", "/api/sessions", Some(json!({"title": "Mine", "productIds": [mouse]}))).await;
    assert_eq!(
        (foreign.status, foreign.body["message"].clone()),
        (400, json!(format!("Product {mouse} not found or not yours")))
    );
    let long = other.call("POST", "/api/sessions", Some(json!({"title": "x".repeat(256)}))).await;
    assert_eq!((long.status, long.body["message"].clone()), (400, json!("title must be at most 255 characters")));
    let malformed = other.call("POST", "/api/sessions", None).await;
    assert_eq!((malformed.status, malformed.body["message"].clone()), (400, json!("title is required")));
    let bobs = other.session("Bob's", &[]).await;

    // Listing: newest first, by creator.
    let all = seller.call("GET", "/api/sessions", None).await.body;
    let ids: Vec<&str> = all["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [bobs.as_str(), id.as_str()]);
    assert_eq!(all["count"], 2);
    let cleos = seller.call("GET", "/api/sessions?creatorId=1", None).await.body;
    assert_eq!(cleos["count"], 1);

    // Status: owner only, one of four.
    let refused = other.call("PATCH", &format!("/api/sessions/{id}/status"), Some(json!({"status": "live"}))).await;
    assert_eq!(refused.status, 403);
    let invalid = seller.call("PATCH", &format!("/api/sessions/{id}/status"), Some(json!({"status": "gone"}))).await;
    assert_eq!(
        (invalid.status, invalid.body["message"].clone()),
        (400, json!("Invalid status. Must be one of: scheduled, live, paused, ended"))
    );
    let paused = seller.status(&id, "paused").await;
    assert_eq!(paused.body["message"], "Session status updated successfully");
    assert_eq!(paused.body["data"]["status"], "paused");
    stop(server).await;
}

#[tokio::test]
async fn the_showcase_over_rest_and_as_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let seller = User::new(&server, "1", "Cleo");
    let mouse = seller.product("Gaming Mouse", 59.99).await;
    let other_product = seller.product("Not in the show", 5.0).await;
    let session = seller.session("Show", std::slice::from_ref(&mouse)).await;
    let viewer = native_ws(&server, None).await;
    join(&viewer, &session).await;
    expect(&viewer, "viewer-count").await;
    let path = format!("/api/sessions/{session}/showcase");

    // Refusals: not live or paused, not the owner, not the session's product.
    let scheduled = seller.call("POST", &path, Some(json!({"productId": mouse}))).await;
    assert_eq!(
        (scheduled.status, scheduled.body["message"].clone()),
        (400, json!("Session must be live or paused to showcase products"))
    );
    seller.start_stream(&session).await;
    expect(&viewer, "stream-started").await;
    let stranger = User::new(&server, "2", "Bob");
    let not_owner = stranger.call("POST", &path, Some(json!({"productId": mouse}))).await;
    assert_eq!(
        (not_owner.status, not_owner.body["message"].clone()),
        (403, json!("Only the session owner can showcase products"))
    );
    let foreign = seller.call("POST", &path, Some(json!({"productId": other_product}))).await;
    assert_eq!((foreign.status, foreign.body["message"].clone()), (400, json!("Product is not part of this session")));
    let as_viewer = call(&viewer, "commerce.showcase-product", json!({"sessionId": session, "productId": mouse})).await;
    assert_eq!(as_viewer, Err((2005, "Only the session owner can showcase products".into())));

    // Over REST.
    let shown = seller.call("POST", &path, Some(json!({"productId": mouse}))).await;
    let product = seller.call("GET", &format!("/api/products/{mouse}"), None).await.body["data"].clone();
    assert_eq!(
        shown.body,
        json!({"success": true, "message": "Product showcased successfully", "data": {"sessionId": session, "activeProductId": mouse, "product": product}})
    );
    assert_eq!(
        expect(&viewer, "product-showcased").await,
        json!({"sessionId": session, "productId": mouse, "product": product})
    );
    let details = seller.call("GET", &format!("/api/sessions/{session}"), None).await.body["data"].clone();
    assert_eq!((details["activeProductId"].clone(), details["activeProduct"].clone()), (json!(mouse), product.clone()));

    // As a call from the creator's connection, while paused; null clears.
    seller.status(&session, "paused").await;
    let creator = native_ws(&server, Some(&token("1", "Cleo", None))).await;
    let cleared =
        call(&creator, "commerce.showcase-product", json!({"sessionId": session, "productId": null})).await.unwrap();
    assert_eq!(cleared, json!({"sessionId": session, "activeProductId": null}));
    assert_eq!(expect(&viewer, "showcase-cleared").await, json!({"sessionId": session}));
    let again =
        call(&creator, "commerce.showcase-product", json!({"sessionId": session, "productId": mouse})).await.unwrap();
    assert_eq!(again["activeProductId"], json!(mouse));
    assert_eq!(expect(&viewer, "product-showcased").await["productId"], json!(mouse));
    let cleared = seller.call("POST", &path, Some(json!({"productId": null}))).await;
    assert_eq!(cleared.body["message"], "Showcase cleared successfully");
    assert_eq!(expect(&viewer, "showcase-cleared").await, json!({"sessionId": session}));
    seller.end_stream(&session).await;
    let after = seller.call("POST", &path, Some(json!({"productId": mouse}))).await;
    assert_eq!(after.status, 400);
    stop(server).await;
}
