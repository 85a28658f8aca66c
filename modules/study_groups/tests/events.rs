//! Every seed event, field by field, as a WebSocket and a QUIC subscriber receive it, with the REST
//! triggers the seed names (and the same operations as native calls).

use crate::support::{Rest, assert_event, call, join, name, native_quic, native_ws, next, start, stop};
use serde_json::json;

#[tokio::test]
async fn a_whole_session_reaches_websocket_and_quic_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let fac = Rest::new(&server, "fay");
    let id = fac.session("g1", 2, "sam").await;
    let ws = native_ws(&server, "wes").await;
    let quic = native_quic(&server, "sam").await;

    let state = join(&ws, &id).await;
    assert_eq!(state["sessionId"], id.as_str());
    assert_eq!(state["status"], "CREATED");
    assert_eq!(state["facilitatorId"], "fay");
    assert_eq!(state["scribeId"], "sam");
    assert_eq!(state["rounds"][0]["status"], "PENDING");
    assert_eq!(state["presence"], json!([{"userId": "wes", "userName": name("wes")}]));
    assert_event(
        &next(&ws, &id).await,
        "userJoined",
        json!({"userId": "wes", "userName": name("wes"), "sessionId": id}),
    );
    join(&quic, &id).await;
    let sam_joined = json!({"userId": "sam", "userName": name("sam"), "sessionId": id});
    assert_event(&next(&ws, &id).await, "userJoined", sam_joined.clone());
    assert_event(&next(&quic, &id).await, "userJoined", sam_joined);

    let started = fac.start(&id).await;
    assert_eq!(started.status, 200, "{started:?}");
    let expected = json!({"sessionId": id, "status": "RUNNING", "startedBy": "fay"});
    for client in [&ws, &quic] {
        let got = next(client, &id).await;
        assert_event(&got, "session.started", expected.clone());
        assert_eq!(got.1, started.body, "the REST answer is the event's data");
    }

    let view = fac.view(&id).await.body;
    let round_id = view["rounds"][0]["id"].as_str().unwrap().to_owned();
    let prompt = fac.prompt(&id, 1, "  What is the main idea?  ").await;
    assert_eq!(prompt.status, 200, "{prompt:?}");
    let expected = json!({"sessionId": id, "roundId": round_id, "roundIndex": 1, "prompt": "What is the main idea?"});
    for client in [&ws, &quic] {
        assert_event(&next(client, &id).await, "prompt.updated", expected.clone());
    }

    let advanced = |status: &str| json!({"sessionId": id, "roundId": round_id, "roundIndex": 1, "status": status});
    assert_eq!(fac.advance(&id, 1, Some("VOTING")).await.status, 200);
    for client in [&ws, &quic] {
        assert_event(&next(client, &id).await, "round.advanced", advanced("VOTING"));
    }

    let wes = Rest::new(&server, "wes");
    let voted = wes.event(&id, "PI_VOTE_SUBMIT", json!({"answer": "A"})).await;
    assert_eq!(voted.status, 201, "{voted:?}");
    assert_eq!(voted.body["eventType"], "PI_VOTE_SUBMIT");
    assert_eq!(voted.body["payload"], json!({"answer": "A"}));
    let vote = |user: &str, kind: &str| json!({"sessionId": id, "roundId": round_id, "roundIndex": 1, "userId": user, "eventType": kind});
    for client in [&ws, &quic] {
        assert_event(&next(client, &id).await, "vote.submitted", vote("wes", "PI_VOTE_SUBMIT"));
    }
    let by_call =
        call(&quic, "study.submitEvent", json!({"sessionId": id, "eventType": "PI_VOTE_SUBMIT", "payload": "B"})).await;
    assert_eq!(by_call.unwrap()["userId"], "sam");
    for client in [&ws, &quic] {
        assert_event(&next(client, &id).await, "vote.submitted", vote("sam", "PI_VOTE_SUBMIT"));
    }

    for status in ["DISCUSSING", "REVOTING"] {
        assert_eq!(fac.advance(&id, 1, None).await.status, 200);
        for client in [&ws, &quic] {
            assert_event(&next(client, &id).await, "round.advanced", advanced(status));
        }
    }
    assert_eq!(wes.event(&id, "PI_REVOTE_SUBMIT", json!({"answer": "B"})).await.status, 201);
    for client in [&ws, &quic] {
        assert_event(&next(client, &id).await, "revote.submitted", vote("wes", "PI_REVOTE_SUBMIT"));
    }

    assert_eq!(fac.advance(&id, 1, Some("EXPLAINING")).await.status, 200);
    for client in [&ws, &quic] {
        assert_event(&next(client, &id).await, "round.advanced", advanced("EXPLAINING"));
    }
    let card = Rest::new(&server, "sam").event(&id, "GROUP_EXPLANATION_SUBMIT", json!({"text": "Because B"})).await;
    assert_eq!(card.status, 201, "{card:?}");
    for client in [&ws, &quic] {
        assert_event(
            &next(client, &id).await,
            "sharedCard.created",
            json!({"sessionId": id, "roundId": round_id, "roundIndex": 1}),
        );
    }

    let sent = wes.chat("g1", &id, "  I think the answer is A \n").await;
    assert_eq!(sent.status, 201, "{sent:?}");
    let chat = json!({
        "sessionId": id, "roundIndex": 1, "message": "I think the answer is A",
        "userId": "wes", "userName": name("wes"),
    });
    for client in [&ws, &quic] {
        assert_event(&next(client, &id).await, "chat.message", chat.clone());
    }
    let by_call = call(&ws, "study.sendChat", json!({"groupId": "g1", "sessionId": id, "message": "me too"})).await;
    assert_eq!(by_call.unwrap()["message"], "me too");
    assert_eq!(next(&quic, &id).await.1["message"], "me too");
    assert_eq!(next(&ws, &id).await.1["message"], "me too");

    assert_eq!(fac.advance(&id, 1, Some("DONE")).await.status, 200);
    for client in [&ws, &quic] {
        assert_event(&next(client, &id).await, "round.advanced", advanced("DONE"));
    }
    let round2 = view["rounds"][1]["id"].as_str().unwrap().to_owned();
    let by_call = call(&ws, "study.advanceRound", json!({"sessionId": id, "roundIndex": 2})).await;
    assert_eq!(by_call.unwrap_err().0, 2005, "only the facilitator advances");
    assert_eq!(fac.advance(&id, 2, None).await.status, 200);
    for client in [&ws, &quic] {
        assert_event(
            &next(client, &id).await,
            "round.advanced",
            json!({"sessionId": id, "roundId": round2, "roundIndex": 2, "status": "VOTING"}),
        );
    }

    let ended = fac.end(&id).await;
    assert_eq!(ended.status, 200, "{ended:?}");
    for client in [&ws, &quic] {
        assert_event(&next(client, &id).await, "session.ended", json!({"sessionId": id, "status": "FINISHED"}));
    }

    let view = fac.view(&id).await.body;
    assert_eq!(view["status"], "FINISHED");
    assert_eq!(view["rounds"][0]["voted"], json!(["sam", "wes"]));
    assert_eq!(view["rounds"][0]["revoted"], json!(["wes"]));
    assert_eq!(view["rounds"][0]["prompt"], "What is the main idea?");
    assert_eq!(view["sharedCards"][0]["payload"], json!({"text": "Because B"}));
    assert_eq!(view["currentRoundIndex"], 2);
    assert!(view["startedAt"].is_string() && view["endedAt"].is_string());
    stop(server).await;
}
