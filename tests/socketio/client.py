"""The real python-socketio client against a running chorus broker.

    python client.py '<json options>'

Options carry `url`, `token`, the token's display `name` and a `topic`. Over long-polling, WebSocket and the upgrade path it
connects with `auth`, calls the movie module with acknowledgements (the token's name joins), joins a room and receives what it publishes there.
Exits 0 when every check held, 1 with the failed check otherwise.
"""

import json
import sys

import socketio

WAIT_S = 15


def check(transports, options):
    with socketio.SimpleClient() as sio:
        sio.connect(options["url"], auth={"token": options["token"]}, transports=transports, wait_timeout=WAIT_S)
        created = sio.call("create", {}, timeout=WAIT_S)
        joined = sio.call("join", {"sessionID": created["sessionID"]}, timeout=WAIT_S)
        assert joined["sessionData"]["participants"] == [options["name"]], joined
        joined = sio.call("chorus:subscribe", {"topic": options["topic"]}, timeout=WAIT_S)
        assert joined["topic"] == options["topic"], joined
        published = sio.call("chorus:publish", {"topic": options["topic"], "payload": {"n": 1}}, timeout=WAIT_S)
        assert isinstance(published["seq"], int), published
        event, data = sio.receive(timeout=WAIT_S)
        assert event == "chorus:event", event
        assert data["payload"] == {"n": 1} and data["seq"] == published["seq"], data
        refused = sio.call("chorus:publish", {"topic": "bad topic!"}, timeout=WAIT_S)
        assert refused["error"]["code"] == 2000, refused
        return sio.client.transport()


def main():
    options = json.loads(sys.argv[1])
    seen = [check(transports, options) for transports in (["polling"], ["websocket"], None)]
    assert seen == ["polling", "websocket", "websocket"], seen
    print(json.dumps({"ok": "python", "transports": seen}))


if __name__ == "__main__":
    main()
