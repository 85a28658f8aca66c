//! Changing products and a session's product list over REST: `PUT`/`DELETE /api/products/:id`, the
//! session-products routes, and deleting a session — each success field by field and each refusal.

use crate::support::{User, expect, http, join, native_ws, start, stop, until};
use serde_json::{Value, json};

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn products_are_changed_and_deleted_by_their_seller_only() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let cleo = User::new(&server, "1", "Cleo");
    let bob = User::new(&server, "2", "Bob");
    let lamp = cleo.product("Lamp", 20.0).await;
    let path = format!("/api/products/{lamp}");

    let changed = cleo.call("PUT", &path, Some(json!({"price": 25.5, "imageUrl": "https://img/lamp.png"}))).await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(changed.body["message"], "Product updated successfully");
    let data = &changed.body["data"];
    assert_eq!(
        (&data["name"], &data["price"], &data["imageUrl"]),
        (&json!("Lamp"), &json!(25.5), &json!("https://img/lamp.png"))
    );
    for (user, body, status, message) in [
        (&bob, json!({"price": 1}), 403, "Only the product's seller can change it"),
        (&cleo, json!({}), 400, "give at least one of name, description, price, imageUrl"),
        (&cleo, json!({"price": -1}), 400, "price must be a number of at least 0"),
        (&cleo, json!({"name": ""}), 400, "name is required"),
    ] {
        let answer = user.call("PUT", &path, Some(body.clone())).await;
        assert_eq!((answer.status, answer.body["message"].as_str()), (status, Some(message)), "{body}: {answer:?}");
    }
    assert_eq!(cleo.call("PUT", "/api/products/nope", Some(json!({"price": 1}))).await.status, 404);
    let session = cleo.session("Lamps", std::slice::from_ref(&lamp)).await;

    assert_eq!(bob.call("DELETE", &path, None).await.status, 403);
    let deleted = cleo.call("DELETE", &path, None).await;
    assert_eq!(
        (deleted.status, &deleted.body),
        (200, &json!({"success": true, "message": "Product deleted successfully"}))
    );
    assert_eq!(cleo.call("DELETE", &path, None).await.status, 404);
    assert_eq!(http(server.http_addr, "GET", &path, None, None).await.status, 404);
    let details = http(server.http_addr, "GET", &format!("/api/sessions/{session}"), None, None).await;
    assert_eq!(details.body["data"]["products"], json!([]), "a deleted product leaves the session's list");
    stop(server).await;
}

#[tokio::test]
async fn a_sessions_products_are_linked_featured_ordered_and_unlinked_by_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let cleo = User::new(&server, "1", "Cleo");
    let bob = User::new(&server, "2", "Bob");
    let (a, b, c) = (cleo.product("A", 1.0).await, cleo.product("B", 2.0).await, cleo.product("C", 3.0).await);
    let foreign = bob.product("Bob's", 4.0).await;
    let session = cleo.session("Shop", &[a.clone(), b.clone()]).await;
    let products = format!("/api/sessions/{session}/products");
    let list = |query: &str| {
        let (addr, path) = (server.http_addr, format!("{products}{query}"));
        async move { http(addr, "GET", &path, None, None).await.body }
    };
    assert_eq!(ids(&list("").await), [a.clone(), b.clone()]);
    assert_eq!(list("").await["data"][1]["displayOrder"], 1);

    let linked = cleo.call("POST", &products, Some(json!({"productId": c, "featured": true}))).await;
    assert_eq!(linked.status, 201, "{linked:?}");
    assert_eq!(
        (&linked.body["data"]["id"], &linked.body["data"]["displayOrder"], &linked.body["data"]["featured"]),
        (&json!(c), &json!(2), &json!(true))
    );
    for (user, body, status) in [
        (&cleo, json!({"productId": c}), 409),
        (&cleo, json!({"productId": foreign}), 400),
        (&cleo, json!({"productId": a, "displayOrder": -1}), 400),
        (&cleo, json!({}), 400),
        (&bob, json!({"productId": foreign}), 403),
    ] {
        let answer = user.call("POST", &products, Some(body.clone())).await;
        assert_eq!(answer.status, status, "{body}: {answer:?}");
    }
    let stranger = cleo.call("POST", &products, Some(json!({"productId": foreign}))).await;
    assert_eq!(stranger.body["message"], format!("Product {foreign} not found or not yours"));

    let featured = cleo.call("PATCH", &products, Some(json!({"productIds": [a, c]}))).await;
    assert_eq!(featured.status, 200, "{featured:?}");
    assert_eq!(featured.body["message"], "Featured products updated successfully");
    assert_eq!(
        featured.body["data"],
        json!([{"id": a, "name": "A", "price": 1.0, "imageUrl": null}, {"id": c, "name": "C", "price": 3.0, "imageUrl": null}])
    );
    assert_eq!(ids(&list("?featured=true").await), [a.clone(), c.clone()]);
    assert_eq!(cleo.call("PATCH", &products, Some(json!({"productIds": [foreign]}))).await.status, 400);
    assert_eq!(bob.call("PATCH", &products, Some(json!({"productIds": [a]}))).await.status, 403);
    assert_eq!(cleo.call("PATCH", &products, Some(json!({}))).await.status, 400);
    assert_eq!(http(server.http_addr, "GET", &format!("{products}?featured=maybe"), None, None).await.status, 400);

    let toggled = cleo.call("PATCH", &format!("{products}/{a}/feature"), Some(json!({"featured": false}))).await;
    assert_eq!((toggled.status, &toggled.body["data"]["featured"]), (200, &json!(false)));
    assert_eq!(ids(&list("?featured=true").await), [c.as_str()]);
    let moved = cleo.call("PATCH", &format!("{products}/{a}/order"), Some(json!({"displayOrder": 9}))).await;
    assert_eq!((moved.status, &moved.body["data"]["displayOrder"]), (200, &json!(9)));
    assert_eq!(ids(&list("").await), [b.clone(), c.clone(), a.clone()], "display order");
    assert_eq!(
        cleo.call("PATCH", &format!("{products}/{a}/order"), Some(json!({"displayOrder": "1"}))).await.status,
        400
    );
    assert_eq!(cleo.call("PATCH", &format!("{products}/{a}/feature"), Some(json!({}))).await.status, 400);
    assert_eq!(
        cleo.call("PATCH", &format!("{products}/{foreign}/feature"), Some(json!({"featured": true}))).await.status,
        404
    );

    // Unlinking the product on show clears the showcase.
    cleo.start_stream(&session).await;
    let watcher = native_ws(&server, None).await;
    join(&watcher, &session).await;
    let shown = cleo.call("POST", &format!("/api/sessions/{session}/showcase"), Some(json!({"productId": b}))).await;
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(until(&watcher, "product-showcased").await["productId"], b.as_str());
    assert_eq!(bob.call("DELETE", &format!("{products}/{b}"), None).await.status, 403);
    let removed = cleo.call("DELETE", &format!("{products}/{b}"), None).await;
    assert_eq!(removed.status, 200, "{removed:?}");
    assert_eq!(expect(&watcher, "showcase-cleared").await, json!({"sessionId": session}));
    assert_eq!(cleo.call("DELETE", &format!("{products}/{b}"), None).await.status, 404);
    let details = http(server.http_addr, "GET", &format!("/api/sessions/{session}"), None, None).await;
    assert_eq!(details.body["data"]["activeProductId"], Value::Null);
    stop(server).await;
}

#[tokio::test]
async fn a_session_is_deleted_by_its_owner_once_off_air_with_its_chat() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _clock) = start(dir.path()).await;
    let cleo = User::new(&server, "1", "Cleo");
    let bob = User::new(&server, "2", "Bob");
    let session = cleo.session("Gone soon", &[]).await;
    let path = format!("/api/sessions/{session}");
    assert_eq!(bob.call("POST", &format!("{path}/chat"), Some(json!({"message": "hi"}))).await.status, 201);
    cleo.start_stream(&session).await;
    let on_air = cleo.call("DELETE", &path, None).await;
    assert_eq!(
        (on_air.status, on_air.body["message"].as_str()),
        (409, Some("End the stream before deleting the session"))
    );
    cleo.end_stream(&session).await;
    assert_eq!(bob.call("DELETE", &path, None).await.status, 403);
    assert_eq!(http(server.http_addr, "DELETE", &path, None, None).await.status, 401);
    let deleted = cleo.call("DELETE", &path, None).await;
    assert_eq!(
        (deleted.status, &deleted.body),
        (200, &json!({"success": true, "message": "Session deleted successfully"}))
    );
    assert_eq!(http(server.http_addr, "GET", &path, None, None).await.status, 404);
    assert_eq!(http(server.http_addr, "GET", &format!("{path}/chat"), None, None).await.status, 404);
    assert!(crate::support::rows(&server, "commerce_chat", &session).await.is_empty(), "its chat is gone too");
    assert_eq!(cleo.call("DELETE", &path, None).await.status, 404);
    stop(server).await;
}
