// Socket.IO 4 peer for chorus-bench: rooms + broadcast, the stack the seed apps run today.
//   join  (room, ack)          -> socket.join(room); ack()
//   pub   (room, payload)      -> io.to(room).emit("msg", room, payload)
//   call  (method, args, ack)  -> ack(args)   (no modules here: the nearest equivalent of a call)
// and the live-commerce seed's reaction path (seed 003), as its Node server does it:
//   join-session  (sessionId | { sessionId }, ack?)  -> socket.join(sessionId); ack()
//   send-reaction ({ sessionId, type }, ack?)        -> count the type in memory, then to the session's room
//                                                        emit("new-reaction", { type, timestamp }) and
//                                                        emit("reaction-stats", { sessionId, counts, total });
//                                                        ack(the same stats) when the emit asks for one
// Prints "socketio listening http=<host>:<port>" once bound. WebSocket transport only, no compression.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const host = process.env.HOST || "127.0.0.1";
const port = Number.parseInt(process.env.PORT || "0", 10);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  maxHttpBufferSize: 1e6,
});

// sessionId -> { counts: { [type]: n }, total }
const reactions = new Map();

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    if (typeof room !== "string") return;
    socket.join(room);
    if (typeof ack === "function") ack();
  });
  socket.on("pub", (room, payload) => {
    if (typeof room !== "string") return;
    io.to(room).emit("msg", room, payload);
  });
  socket.on("call", (method, args, ack) => {
    if (typeof ack === "function") ack(args);
  });
  socket.on("join-session", (arg, ack) => {
    const sessionId = typeof arg === "string" ? arg : arg && arg.sessionId;
    if (typeof sessionId !== "string") return;
    socket.join(sessionId);
    if (typeof ack === "function") ack();
  });
  socket.on("send-reaction", (data, ack) => {
    const { sessionId, type } = data || {};
    if (typeof sessionId !== "string" || typeof type !== "string") return;
    let stats = reactions.get(sessionId);
    if (!stats) {
      stats = { counts: {}, total: 0 };
      reactions.set(sessionId, stats);
    }
    stats.counts[type] = (stats.counts[type] || 0) + 1;
    stats.total += 1;
    io.to(sessionId).emit("new-reaction", { type, timestamp: new Date() });
    const figures = { sessionId, counts: stats.counts, total: stats.total };
    io.to(sessionId).emit("reaction-stats", figures);
    if (typeof ack === "function") ack(figures);
  });
});

httpServer.listen(port, host, () => {
  const addr = httpServer.address();
  console.log(`socketio listening http=${addr.address}:${addr.port}`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
