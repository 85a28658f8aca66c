// What every chorus demo page shares (served at /demo/demo.js after a `CHORUS_BROKER` config line):
// connection state in words, reconnect backoff, the guidance shown when a page lacks its parameters,
// REST and dev-token helpers, and loading the Socket.IO client from wherever the broker serves it.
const chorusDemo = (() => {
  const $ = (id) => document.getElementById(id);

  // The page's query parameters.
  const params = new URLSearchParams(location.search);

  // Shows a connection state (a short word in #status, for scripts and tests) and what it means
  // (a sentence in #status-words, for people).
  function status(state, words) {
    $('status').textContent = state;
    $('status').dataset.state = state;
    $('status-words').textContent = words;
  }

  // A line of text at the top of the list with id `listId` (newest first).
  function prepend(listId, text) {
    const item = document.createElement('li');
    item.textContent = text;
    $(listId).prepend(item);
  }

  // A line in the page's #log, with the time.
  function log(text) {
    prepend('log', `${new Date().toLocaleTimeString()} ${text}`);
  }

  // Milliseconds to wait before reconnect attempt `attempt` (0-based): doubling from 0.5 s up to 15 s,
  // with jitter so many tabs do not come back at once.
  function backoff(attempt) {
    const base = Math.min(15000, 500 * 2 ** attempt);
    return Math.round(base / 2 + Math.random() * base / 2);
  }

  // A WebSocket close code in words.
  function closeWords(code, reason) {
    const why = reason ? ` (${reason})` : '';
    switch (code) {
      case 1000: return `the connection was closed normally${why}.`;
      case 1001: return `the broker is restarting or shutting down${why}.`;
      case 1006: return 'the connection was lost or the broker cannot be reached (is it running?).';
      case 1008: return `the broker refused the token${why}: it is missing, expired, or signed with another secret.`;
      case 1009: return `a message was too large for the broker${why}.`;
      case 1011: return `the broker hit an internal error${why}.`;
      default: return `the connection closed with code ${code}${why}.`;
    }
  }

  // Calls the broker's REST API; resolves to the parsed body, rejects with the status and message.
  async function rest(method, path, token, body) {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    const parsed = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${(parsed && parsed.message) || text}`);
    return parsed;
  }

  // A short-lived token from the broker (dev mode only) for `claims` ({ sub?, name?, role? }).
  async function token(claims) {
    return (await rest('POST', '/demo/token', null, claims || {})).token;
  }

  // A function resolving to a minted token for `claims`, minting a fresh one once half its lifetime is gone.
  function tokenSource(claims) {
    let cached = null;
    let mintedAt = 0;
    return async () => {
      if (!cached || Date.now() - mintedAt > CHORUS_BROKER.tokenTtlSecs * 500) {
        cached = await token(claims);
        mintedAt = Date.now();
      }
      return cached;
    };
  }

  // Shows #guidance under the page's heading: why the page cannot start by itself, the steps to take, and
  // a ready-to-copy URL to open instead.
  function guide(reason, steps, url) {
    const section = document.createElement('section');
    section.id = 'guidance';
    const why = document.createElement('p');
    why.id = 'guidance-reason';
    why.textContent = reason;
    const list = document.createElement('ol');
    list.id = 'guidance-steps';
    list.append(...steps.map((step) => {
      const item = document.createElement('li');
      item.textContent = step;
      return item;
    }));
    const open = document.createElement('p');
    const code = document.createElement('code');
    code.id = 'guidance-url';
    code.textContent = url;
    open.append('Then open: ', code);
    section.append(why, list, open);
    document.querySelector('h1').after(section);
    status('waiting', 'Not connected: this page needs the parameters described above.');
  }

  // Loads the Socket.IO browser client from the broker (`--socketio-path`); resolves to `io`.
  function loadSocketIo() {
    if (!CHORUS_BROKER.socketioPath) {
      return Promise.reject(new Error('the broker runs with --disable-socketio, so this page cannot connect'));
    }
    return new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = `${CHORUS_BROKER.socketioPath}socket.io.min.js`;
      script.onload = () => resolve(window.io);
      script.onerror = () => reject(new Error(`cannot load ${script.src}`));
      document.head.append(script);
    });
  }

  // Follows a Socket.IO socket's state in words; socket.io-client reconnects by itself with backoff.
  function followSocket(socket, joined) {
    status('connecting', 'Connecting to the broker over Socket.IO…');
    socket.on('connect', () => {
      status('connected', `Connected (Socket.IO over ${socket.io.engine.transport.name}); joining…`);
      joined();
    });
    socket.on('disconnect', (reason) => {
      const words = reason === 'io server disconnect'
        ? 'The broker closed the connection; press Reconnect to try again.'
        : `Connection lost (${reason}); reconnecting automatically…`;
      status('disconnected', words);
    });
    socket.on('connect_error', (error) => {
      status('error', `The broker refused or could not be reached: ${error.message}. Retrying…`);
    });
    socket.io.on('reconnect_attempt', (attempt) => {
      status('reconnecting', `Reconnecting (attempt ${attempt})…`);
    });
    $('reconnect').addEventListener('click', () => {
      socket.disconnect();
      socket.connect();
    });
  }

  return { $, params, status, prepend, log, backoff, closeWords, rest, token, tokenSource, guide, loadSocketIo, followSocket, dev: CHORUS_BROKER.dev };
})();
