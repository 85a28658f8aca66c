// Socket.IO 4 peer for chorus-bench: rooms + broadcast, the stack the seed apps run today.
//   join  (room, ack)          -> socket.join(room); ack()
//   pub   (room, payload)      -> io.to(room).emit("msg", room, payload)
//   call  (method, args, ack)  -> ack(args)   (no modules here: the nearest equivalent of a call)
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
