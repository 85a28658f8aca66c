// Scenarios run with the real socket.io-client against a running chorus broker.
//
//   node client.mjs <scenario> '<json options>'
//
// Options always carry `url` (the broker's http://host:port). A scenario asserts with node:assert and
// exits 0 when everything held; on failure it prints the assertion and exits 1. Scenarios that need the
// test harness to act (publish from a native client, stop a node) print one line `READY <json>` on
// stdout and wait for one line on stdin before they go on; every line they print is JSON or `READY …`.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { io } from "socket.io-client";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const [scenario, rawOptions] = process.argv.slice(2);
const options = JSON.parse(rawOptions ?? "{}");
const WAIT_MS = options.waitMs ?? 30000;

const stdin = createInterface({ input: process.stdin });
const stdinLines = stdin[Symbol.asyncIterator]();

/** Prints `READY <detail>` and waits for the harness's go-ahead line. */
async function ready(detail = {}) {
  console.log(`READY ${JSON.stringify(detail)}`);
  const { value, done } = await stdinLines.next();
  assert.ok(!done, "the harness closed stdin before saying go");
  return value;
}

/** Resolves with the arguments of the next `event` on `emitter` (socket or manager), or fails. */
function next(emitter, event, what = event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${WAIT_MS} ms`)), WAIT_MS);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** Emits with an acknowledgement and resolves with the ack's first argument. */
async function call(socket, event, ...args) {
  return await socket.timeout(WAIT_MS).emitWithAck(event, ...args);
}

/** A connected socket; fails on connect_error. */
async function connect(path = "/", socketOptions = {}) {
  const socket = io(options.url + path, { forceNew: true, reconnection: false, ...socketOptions });
  const outcome = await Promise.race([next(socket, "connect").then(() => null), next(socket, "connect_error")]);
  if (outcome) throw new Error(`connect to ${path} refused: ${outcome[0].message}`);
  return socket;
}

/** The connect_error a connection attempt ends with. */
async function refused(path, socketOptions = {}) {
  const socket = io(options.url + path, { forceNew: true, reconnection: false, ...socketOptions });
  const [error] = await next(socket, "connect_error");
  socket.close();
  return error;
}

/** HTTP against the broker, JSON in and out. */
async function http(method, path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(options.url + path, { method, headers, body: body && JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

async function createMovieSession() {
  const { status, body } = await http("POST", "/api/session/create", {});
  assert.equal(status, 200);
  return body.sessionID;
}

/** A seed document's client snippet, copied verbatim into `seeds/`. */
function seedBlock(name) {
  return readFileSync(join(here, "seeds", name), "utf8");
}

/**
 * Runs a seed's browser snippet in Node as the browser would: its imports stay at the top, its body runs
 * inside an async function whose parameters are `scope`'s names (the variables the snippet takes from its
 * page: `sessionID`, `socket`, `currentUser`, UI callbacks; some snippets end with the `return () => …` of
 * a React effect), TypeScript types are stripped by the real compiler, and `location` and relative `fetch`
 * resolve against the broker as they would on a page it served.
 */
async function runSeedSnippet(code, scope, epilogue = "") {
  const lines = code.split("\n");
  const imports = lines.filter((l) => l.startsWith("import "));
  // The seeds' snippets use `io` from socket.io-client; the complete-flow one leaves its import implied.
  if (!imports.some((l) => l.includes("socket.io-client"))) imports.push('import { io } from "socket.io-client";');
  const body = lines.filter((l) => !l.startsWith("import ")).join("\n");
  const params = Object.keys(scope).join(", ");
  const source = `${imports.join("\n")}\nexport default async function ({ ${params} }) {\n${body}\n${epilogue}\n}\n`;
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const dir = mkdtempSync(join(here, ".seed-"));
  const file = join(dir, "snippet.mjs");
  writeFileSync(file, js);
  try {
    const module = await import(pathToFileURL(file).href);
    return await module.default(scope);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Browser globals a page served by the broker would have. */
function browserGlobals() {
  const base = new URL(options.url);
  globalThis.location = {
    href: base.href, origin: base.origin, protocol: base.protocol, host: base.host,
    hostname: base.hostname, port: base.port, pathname: "/", search: "", hash: "",
  };
  const nodeFetch = globalThis.fetch;
  globalThis.fetch = (input, init) => nodeFetch(new URL(input, base), init);
}

/** Captures console.log / console.error lines as [method, ...args]. */
function captureConsole() {
  const seen = [];
  const waiters = [];
  for (const method of ["log", "error"]) {
    console[method] = (...args) => {
      seen.push([method, ...args]);
      for (const w of waiters.splice(0)) w();
    };
  }
  const out = process.stdout;
  return {
    seen,
    async until(predicate, what) {
      const deadline = Date.now() + WAIT_MS;
      while (!seen.some(predicate)) {
        if (Date.now() > deadline) throw new Error(`no console line ${what}; saw ${JSON.stringify(seen)}`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, 50); });
      }
      return seen.find(predicate);
    },
    print(line) { out.write(`${line}\n`); },
  };
}

const scenarios = {
  // Seed 000, "Connect to WebSocket (Client-side)", verbatim: joined-session, session-update, cleanup.
  async "seed-000"() {
    browserGlobals();
    const sessionID = await createMovieSession();
    const logs = captureConsole();
    const cleanup = await runSeedSnippet(seedBlock("000-connect.ts"), { sessionID });
    const [, , joined] = await logs.until((l) => l[1] === "Successfully joined session:", "joined-session");
    assert.equal(joined, sessionID);
    const join = await http("POST", "/api/session/participant", { sessionID, name: "Ann" }, options.token);
    assert.equal(join.status, 200);
    const [, , data] = await logs.until((l) => l[1] === "Session updated:", "session-update");
    assert.deepEqual(data.participants, ["Ann"]);
    assert.deepEqual(data.movies, []);
    assert.equal(typeof data.createdAt, "string");
    assert.equal(typeof cleanup, "function");
    cleanup();
    logs.print(JSON.stringify({ ok: "seed-000" }));
  },

  // Seed 001, "Connect to WebSocket After Joining", verbatim, on a session that does not exist: the seed's
  // error handler prints the contract's message.
  async "seed-001-error"() {
    browserGlobals();
    const created = await createMovieSession();
    const missing = created === "100000" ? "100001" : "100000";
    const logs = captureConsole();
    await runSeedSnippet(seedBlock("001-connect.ts"), { sessionID: missing }, "globalThis.seedSocket = socket;");
    const [, , message] = await logs.until((l) => l[1] === "Socket error:", "the error event");
    assert.equal(message, "Session not found or has expired");
    globalThis.seedSocket.disconnect();
    logs.print(JSON.stringify({ ok: "seed-001-error" }));
  },

  // Seed 001, "Complete Flow Example", verbatim except that its usage line joins the session the test
  // created instead of the literal "123456": REST join, then the socket sees every change.
  async "seed-001-flow"() {
    browserGlobals();
    const sessionID = await createMovieSession();
    const code = seedBlock("001-flow.ts").replace('joinSession("123456")', "joinSession(sessionID)");
    const { socket, sessionData } = await runSeedSnippet(code, { sessionID }, "return { socket, sessionData };");
    assert.deepEqual(sessionData.participants, []);
    await next(socket, "joined-session");
    const update = next(socket, "session-update");
    const movie = await http("POST", "/api/session/participant", { sessionID, name: "Bo" }, options.token);
    assert.equal(movie.status, 200);
    const [data] = await update;
    assert.deepEqual(data.participants, ["Bo"]);
    socket.disconnect();
    console.log(JSON.stringify({ ok: "seed-001-flow" }));
  },

  // Seed 002's client snippets, verbatim except for the values they leave to the app ("http://localhost:8000",
  // "your-jwt-token", "session-uuid"): a facilitator and a member connect both ways the seed shows, join, and
  // the REST triggers drive the session through every event; each listener snippet logs the seed's payload.
  // Then the member's connection drops and the seed's reconnection handler joins again.
  async "seed-002"() {
    browserGlobals();
    const api = async (method, path, body, token, expected) => {
      const { status, body: answer } = await http(method, path, body, token);
      assert.equal(status, expected, `${method} ${path}: ${JSON.stringify(answer)}`);
      return answer;
    };
    const { fay, max } = options.tokens;
    const state = await api("POST", "/group-sessions", { groupId: "g-1", scribeId: "fay" }, fay, 201);
    const id = state.sessionId ?? state.id;
    const values = (code, token) =>
      code.replaceAll('"http://localhost:8000', `"${options.url}`).replaceAll("your-jwt-token", token).replaceAll('"session-uuid"', JSON.stringify(id));
    const logs = captureConsole();
    const facilitator = await runSeedSnippet(values(seedBlock("002-auth.ts"), fay), {}, "return socket;");
    await runSeedSnippet(seedBlock("002-connection-events.ts"), { socket: facilitator });
    await logs.until((l) => l[1] === "Connected:" && l[2] === facilitator.id, "the seed's connect log");
    const member = await runSeedSnippet(values(seedBlock("002-query.ts"), max), {}, "return socket;");
    await next(member, "connect");

    const seen = [];
    const events = ["userJoined", "userLeft", "session.started", "session.ended", "round.advanced", "prompt.updated", "vote.submitted", "revote.submitted", "sharedCard.created", "chat.message"];
    for (const event of events) {
      const log = (data) => seen.push([event, data]);
      await runSeedSnippet(seedBlock(`002-on-${event}.ts`), { socket: facilitator, console: { log } });
    }
    const until = async (event, predicate = () => true) => {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        const hit = seen.find(([e, d]) => e === event && predicate(d));
        if (hit) {
          seen.splice(seen.indexOf(hit), 1);
          assert.equal(typeof hit[1].timestamp, "string", `${event} carries timestamp`);
          assert.ok(!Number.isNaN(Date.parse(hit[1].timestamp)), `${event} timestamp is a date`);
          return hit[1];
        }
        if (Date.now() > deadline) throw new Error(`no ${event}; saw ${JSON.stringify(seen)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };

    await runSeedSnippet(values(seedBlock("002-join.ts"), fay), { socket: facilitator });
    await runSeedSnippet(values(seedBlock("002-join.ts"), max), { socket: member });
    const joined = await until("userJoined", (d) => d.userId === "max");
    assert.equal(joined.userName, "Max");
    assert.equal(joined.sessionId, id);

    const session = `/group-sessions/${id}`;
    await api("PUT", `${session}/start`, {}, fay, 200);
    assert.equal((await until("session.started")).status, "RUNNING");
    await api("PATCH", `${session}/rounds/1/prompt`, { prompt: "Which one?" }, fay, 200);
    assert.equal((await until("prompt.updated")).prompt, "Which one?");
    await api("POST", `${session}/rounds/1/advance`, {}, fay, 200);
    assert.equal((await until("round.advanced", (d) => d.status === "VOTING")).roundIndex, 1);
    await api("POST", `${session}/events`, { eventType: "PI_VOTE_SUBMIT", payload: { answer: "A" } }, max, 201);
    assert.equal((await until("vote.submitted")).userId, "max");
    await api("POST", `${session}/rounds/1/advance`, {}, fay, 200);
    await until("round.advanced", (d) => d.status === "DISCUSSING");
    await api("POST", `${session}/rounds/1/advance`, {}, fay, 200);
    await until("round.advanced", (d) => d.status === "REVOTING");
    await api("POST", `${session}/events`, { eventType: "PI_REVOTE_SUBMIT", payload: { answer: "B" } }, max, 201);
    assert.equal((await until("revote.submitted")).eventType, "PI_REVOTE_SUBMIT");
    await api("POST", `${session}/rounds/1/advance`, {}, fay, 200);
    await until("round.advanced", (d) => d.status === "EXPLAINING");
    await api("POST", `${session}/events`, { eventType: "GROUP_EXPLANATION_SUBMIT", payload: { text: "Because." } }, fay, 201);
    assert.equal((await until("sharedCard.created")).roundIndex, 1);
    await api("POST", `/groups/g-1/sessions/${id}/chat`, { message: "  hello  " }, max, 201);
    const chat = await until("chat.message");
    assert.deepEqual([chat.message, chat.userId, chat.userName], ["hello", "max", "Max"]);

    const invalidated = [];
    await runSeedSnippet(seedBlock("002-reconnection.ts"), { socket: member, activeSessionId: id, queryClient: { invalidateQueries: (q) => invalidated.push(q) } });
    member.io.engine.close();
    assert.equal((await until("userLeft", (d) => d.userId === "max")).sessionId, id);
    await until("userJoined", (d) => d.userId === "max");
    assert.deepEqual(invalidated, [{ queryKey: ["session", id] }]);

    await runSeedSnippet(values(seedBlock("002-leave.ts"), max), { socket: member });
    await until("userLeft", (d) => d.userId === "max");
    await api("PUT", `${session}/end`, {}, fay, 200);
    assert.equal((await until("session.ended")).status, "FINISHED");
    facilitator.disconnect();
    member.disconnect();
    logs.print(JSON.stringify({ ok: "seed-002" }));
  },

  // Seed 003's client snippets, verbatim except that their placeholder ids ('session-uuid',
  // 'product-uuid') become the session and product the test created: a creator and a viewer join, the viewer
  // reacts and clicks, the creator showcases (over Socket.IO and REST); every listener the snippets register
  // gets the seed's payloads.
  async "seed-003"() {
    browserGlobals();
    globalThis.window = { addEventListener() {} };
    const api = async (method, path, body, token) => {
      const { status, body: answer } = await http(method, path, body, token);
      assert.ok(status < 300 && answer.success, `${method} ${path}: ${status} ${JSON.stringify(answer)}`);
      return answer.data;
    };
    const product = await api("POST", "/api/products", { name: "Desk lamp", description: "Warm light", price: 25 }, options.creatorToken);
    const session = await api("POST", "/api/sessions", { title: "Lamps live", productIds: [product.id] }, options.creatorToken);
    await api("POST", `/api/sessions/${session.id}/start-stream`, {}, options.creatorToken);
    const ids = (code) => code.replaceAll("'session-uuid'", JSON.stringify(session.id)).replaceAll("'product-uuid'", JSON.stringify(product.id));
    const creator = await connect("/", { auth: { token: options.creatorToken } });
    const viewer = await connect("/", { auth: { token: options.viewerToken } });
    const seen = {};
    const record = (name) => (...args) => (seen[name] ??= []).push(args);
    const until = async (name, what) => {
      const deadline = Date.now() + WAIT_MS;
      while (!seen[name]?.length) {
        if (Date.now() > deadline) throw new Error(`no ${what}; saw ${JSON.stringify(seen)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return seen[name][0];
    };

    const creatorCounts = [];
    creator.on("viewer-count", (count) => creatorCounts.push(count));
    const [creatorSnapshot] = await Promise.all([next(creator, "viewer-count"), runSeedSnippet(ids(seedBlock("003-join.js")), { socket: creator, currentUser: { id: options.creatorSub } })]);
    assert.deepEqual(creatorSnapshot, [0], "the publisher is not counted");
    await runSeedSnippet(ids(seedBlock("003-join.js")), { socket: viewer, currentUser: { id: options.viewerSub } });
    const deadline = Date.now() + WAIT_MS;
    while (!creatorCounts.includes(1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(creatorCounts.includes(1), `the creator sees one viewer: ${JSON.stringify(creatorCounts)}`);

    await runSeedSnippet(ids(seedBlock("003-reactions.js")), { socket: viewer, animateReaction: record("animateReaction"), updateReactionDisplay: record("updateReactionDisplay") });
    assert.deepEqual(await until("animateReaction", "new-reaction"), ["heart"]);
    assert.deepEqual(await until("updateReactionDisplay", "reaction-stats"), [{ heart: 1 }]);

    const showcase = { socket: creator, sessionId: session.id, token: options.creatorToken, displayShowcasedProduct: record("display"), hideShowcasedProduct: record("hide") };
    await runSeedSnippet(ids(seedBlock("003-showcase.js")), showcase);
    const [shown] = await until("display", "product-showcased");
    assert.equal(shown.id, product.id);
    assert.equal(shown.name, "Desk lamp");

    const logs = captureConsole();
    const clicks = { socket: viewer, sessionId: session.id, currentUser: { id: options.viewerSub }, updateConversionDashboard: record("dashboard"), updateTrendingProductsList: record("trending") };
    await runSeedSnippet(ids(seedBlock("003-clicks.js")), clicks);
    const [, , history] = await logs.until((l) => l[1] === "Historical conversion data:", "the conversion-stats fetch");
    assert.equal(typeof history, "object");
    const [trending] = await until("trending", "trending-products (every 4 s)");
    assert.equal(trending.length, 1);
    assert.equal(trending[0].productId, product.id);
    assert.equal(trending[0].uniqueClicks, 1);
    assert.equal(trending[0].totalClicks, 1);
    assert.equal(trending[0].clickThroughRate, 100);
    const [dashboard] = await until("dashboard", "product-click-stats");
    assert.equal(dashboard.sessionId, session.id);
    assert.equal(dashboard.totalViewers, 1);
    creator.disconnect();
    viewer.disconnect();
    logs.print(JSON.stringify({ ok: "seed-003" }));
  },

  // The movie module's calls as acknowledged emits, on one transport or the upgrade path.
  async "movie-calls"() {
    const socket = await connect("/", { transports: options.transports, auth: { token: options.token } });
    const created = await call(socket, "create", {});
    assert.match(created.sessionID, /^[1-9][0-9]{5}$/);
    socket.emit("join-session", created.sessionID);
    const [joined] = await next(socket, "joined-session");
    assert.equal(joined.sessionID, created.sessionID);
    const updated = next(socket, "session-update");
    const join = await call(socket, "join", { sessionID: created.sessionID });
    assert.deepEqual(join.sessionData.participants, [options.name]);
    assert.deepEqual((await updated)[0].participants, [options.name]);
    const refused = await call(socket, "vote", { sessionID: created.sessionID, movieId: 7 });
    assert.deepEqual(refused, { error: { code: 2007, message: "Movie not found" } });
    const unknown = await call(socket, "no-such-event", {});
    assert.equal(unknown.error.code, 2006);
    console.log(JSON.stringify({ ok: "movie-calls", transport: socket.io.engine.transport.name }));
    socket.disconnect();
  },

  // Identity from auth.token, ?token= and an Authorization header; refusals as connect_error.
  async auth() {
    const whoami = async (socketOptions) => {
      const socket = await connect(options.namespace, socketOptions);
      const me = await call(socket, "whoami", null);
      socket.disconnect();
      return me;
    };
    assert.equal((await whoami({ auth: { token: options.token } })).sub, options.sub);
    assert.equal((await whoami({ query: { token: options.token } })).sub, options.sub);
    assert.equal((await whoami({ transports: ["polling"], extraHeaders: { Authorization: `Bearer ${options.token}` } })).sub, options.sub);
    const none = await refused(options.namespace, {});
    assert.match(none.message, /authentication required/);
    assert.deepEqual(none.data, { code: 1005 });
    const bad = await refused(options.namespace, { auth: { token: options.badToken } });
    assert.equal(typeof bad.message, "string");
    assert.equal(typeof bad.data.code, "number");
    const unknown = await refused("/no-such-namespace", {});
    assert.equal(unknown.message, "Invalid namespace");
    console.log(JSON.stringify({ ok: "auth" }));
  },

  // Refused connections on a namespace: a bad token (always), no token (where one is required).
  async "refused-auth"() {
    const bad = await refused(options.namespace, { auth: { token: options.badToken } });
    assert.match(bad.message, /^invalid token/);
    assert.deepEqual(bad.data, { code: 3000 });
    if (options.requiresToken) {
      const none = await refused(options.namespace, {});
      assert.deepEqual(none.data, { code: 1005 });
    }
    console.log(JSON.stringify({ ok: "refused-auth" }));
  },

  // A valid token connects; each bad one is refused with its code, from auth.token and from ?token=.
  async "refused-tokens"() {
    const me = await connect("/", { auth: { token: options.token } });
    await call(me, "chorus:subscribe", { topic: options.topic });
    const presence = await call(me, "chorus:call", { method: "chorus.presence", args: { topic: options.topic } });
    assert.deepEqual(presence.members.map((m) => m.user), [options.sub], "the valid token's identity");
    me.disconnect();
    for (const { attack, token, code } of options.tokens) {
      for (const socketOptions of [{ auth: { token } }, { query: { token } }]) {
        const bad = await refused("/", socketOptions);
        assert.deepEqual(bad.data, { code }, `${attack}: ${bad.message}`);
      }
    }
    console.log(JSON.stringify({ ok: "refused-tokens", refused: options.tokens.length }));
  },

  // A room shared with native clients: wait, let the harness publish natively, then publish from here.
  async "shared-topic"() {
    const socket = await connect("/", { transports: options.transports, auth: { token: options.token } });
    const joined = await call(socket, "chorus:subscribe", { topic: options.topic });
    assert.equal(joined.topic, options.topic);
    const presence = await call(socket, "chorus:call", { method: "chorus.presence", args: { topic: options.topic } });
    assert.ok(presence.members.some((m) => m.user === "ann"), `the broker's own calls work: ${JSON.stringify(presence)}`);
    const events = [];
    socket.on("chorus:event", (event) => events.push(event));
    await ready({ seq: joined.seq });
    const deadline = Date.now() + WAIT_MS;
    while (events.length < options.expect.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(events.map((e) => e.payload), options.expect);
    for (const e of events) assert.equal(e.topic, options.topic);
    const published = await call(socket, "chorus:publish", { topic: options.topic, payload: { from: "socket.io" } });
    assert.equal(typeof published.seq, "number");
    console.log(JSON.stringify({ ok: "shared-topic", events }));
    await ready();
    socket.disconnect();
  },

  // Seed 003's frontend flow against chorus alone: accounts, a session with products, the stream, a viewer
  // over Socket.IO with the token chorus issued (reacts, clicks, chats), the end, and the figures after.
  async "commerce-flow"() {
    const stamp = Date.now();
    const account = async (name, role) => {
      const email = `${name.toLowerCase()}-${stamp}@example.com`;
      const registered = await http("POST", "/api/auth/register", { name, email, password: "s3cret-pass", role });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      const login = await http("POST", "/api/auth/login", { email, password: "s3cret-pass" });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      assert.equal(login.body.message, "Login successful");
      assert.equal(login.body.data.user.email, email);
      return login.body.data;
    };
    const creator = await account("Cleo", "creator");
    const token = creator.accessToken;
    const product = async (name, price) => {
      const created = await http("POST", "/api/products", { name, description: `${name}!`, price }, token);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body.data.id;
    };
    const [lamp, desk] = [await product("Lamp", 20), await product("Desk", 120)];
    const session = await http("POST", "/api/sessions", { title: "Home office", productIds: [lamp, desk] }, token);
    assert.equal(session.status, 201, JSON.stringify(session.body));
    const sessionId = session.body.data.id;
    const started = await http("POST", `/api/sessions/${sessionId}/start-stream`, null, token);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.equal(started.body.data.status, "live");

    const host = await connect("/", { auth: { token } });
    host.emit("join-session", { sessionId });
    assert.deepEqual(await next(host, "viewer-count"), [0], "the creator is not counted");
    const viewer = await account("Vera", "user");
    const socket = await connect("/", { auth: { token: viewer.accessToken } });
    const counted = next(host, "viewer-count");
    socket.emit("join-session", { sessionId, userId: viewer.user.id });
    assert.deepEqual(await counted, [1]);

    for (let i = 0; i < 2; i++) {
      const stats = next(host, "reaction-stats");
      socket.emit("send-reaction", { sessionId, type: "heart" });
      const [figures] = await stats;
      assert.equal(figures.total, i + 1);
    }
    const clicks = next(host, "product-click-stats", "the 4 s click broadcast");
    socket.emit("track-product-click", { sessionId, productId: lamp });
    socket.emit("track-product-click", { sessionId, productId: lamp });
    const [clickStats] = await clicks;
    const lampStats = clickStats.productStats.find((p) => p.productId === lamp);
    assert.deepEqual([lampStats.uniqueClicks, lampStats.totalClicks, lampStats.clickThroughRate], [1, 2, 100]);
    const chat = next(host, "new-message");
    socket.emit("send-message", { sessionId, message: "  Is the lamp dimmable?  " });
    const [message] = await chat;
    assert.equal(message.message, "Is the lamp dimmable?");
    assert.equal(message.userName, "Vera");

    const ended = next(host, "stream-ended");
    const end = await http("POST", `/api/sessions/${sessionId}/end-stream`, null, token);
    assert.equal(end.status, 200, JSON.stringify(end.body));
    await ended;
    socket.disconnect();
    host.disconnect();

    const analytics = await http("GET", `/api/sessions/${sessionId}/analytics`, null, token);
    assert.equal(analytics.status, 200, JSON.stringify(analytics.body));
    assert.equal(analytics.body.session.status, "ended");
    assert.deepEqual(
      [analytics.body.viewers.unique, analytics.body.viewers.total, analytics.body.viewers.peak],
      [1, 1, 1],
      JSON.stringify(analytics.body.viewers),
    );
    assert.deepEqual(analytics.body.reactions, { total: 2, breakdown: { heart: 2 } });
    assert.equal(analytics.body.products.total, 2);
    const conversion = await http("GET", `/api/sessions/${sessionId}/conversion-stats`, null, token);
    assert.equal(conversion.body.sessionStatus, "ended");
    const stored = conversion.body.data.products.find((p) => p.productId === lamp);
    assert.deepEqual(
      [stored.productName, stored.uniqueClicks, stored.totalClicks, stored.clickThroughRate],
      ["Lamp", 1, 2, 100],
      JSON.stringify(conversion.body),
    );
    const history = await http("GET", `/api/sessions/${sessionId}/chat`, null, null);
    assert.deepEqual(history.body.data.map((m) => m.message), ["Is the lamp dimmable?"]);
    const dashboard = await http("GET", `/api/analytics/creator/${creator.user.id}`, null, token);
    assert.equal(dashboard.status, 200, JSON.stringify(dashboard.body));
    assert.deepEqual(dashboard.body.data.sessions.byStatus, { ended: 1, live: 0, paused: 0, scheduled: 0 });
    assert.deepEqual(dashboard.body.data.products, { totalClicks: 2, uniqueUsers: 1, averageCTR: 100 });
    console.log(JSON.stringify({ ok: "commerce-flow", sessionId }));
  },

  // Binary both ways: a Buffer in an event reaches the module as bytes and comes back as a Buffer, in the
  // acknowledgement and in the room's events.
  async binary() {
    const socket = await connect("/", { transports: options.transports, auth: { token: options.token } });
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const reply = await call(socket, "echo", { data: bytes });
    assert.ok(Buffer.isBuffer(reply.data), `the ack carries a Buffer: ${JSON.stringify(reply)}`);
    assert.deepEqual([...reply.data], [...bytes]);
    const joined = await call(socket, "chorus:subscribe", { topic: options.topic });
    assert.equal(joined.topic, options.topic);
    const event = next(socket, "chorus:event");
    await call(socket, "chorus:publish", { topic: options.topic, payload: { blob: bytes } });
    const [got] = await event;
    assert.ok(Buffer.isBuffer(got.payload.blob), `payload.blob is ${JSON.stringify(got.payload)}`);
    assert.deepEqual([...got.payload.blob], [...bytes]);
    console.log(JSON.stringify({ ok: "binary" }));
    socket.disconnect();
  },

  // A client that reconnects on its own after its node goes away, and rejoins its room.
  async reconnect() {
    const socket = io(options.url, { forceNew: true, auth: { token: options.token }, reconnectionDelay: 100, reconnectionDelayMax: 500 });
    await next(socket, "connect");
    const first = socket.id;
    await call(socket, "chorus:subscribe", { topic: options.topic });
    const reconnected = next(socket.io, "reconnect", "reconnection");
    await ready({ sid: first });
    await reconnected;
    const again = await call(socket, "chorus:subscribe", { topic: options.topic });
    assert.equal(again.topic, options.topic);
    assert.notEqual(socket.id, first);
    const event = next(socket, "chorus:event");
    await ready({ sid: socket.id });
    const [got] = await event;
    assert.deepEqual(got.payload, options.expect);
    console.log(JSON.stringify({ ok: "reconnect" }));
    socket.disconnect();
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; known: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
try {
  await run();
  stdin.close();
  process.exit(0);
} catch (error) {
  process.stderr.write(`scenario ${scenario} failed: ${error.stack ?? error}\n`);
  process.exit(1);
}
