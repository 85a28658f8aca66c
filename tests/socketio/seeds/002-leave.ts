// Seed 002, "Leave Session", copied verbatim from the seed document.
socket.emit("leaveSession", { sessionId: "session-uuid" });
