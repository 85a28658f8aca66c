// Seed 002, "Join Session", copied verbatim from the seed document.
socket.emit("joinSession", { sessionId: "session-uuid" });
