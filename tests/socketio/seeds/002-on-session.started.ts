// Seed 002, "session.started", copied verbatim from the seed document.
socket.on("session.started", (data) => {
  console.log(data);
  // {
  //   sessionId: "session-uuid",
  //   status: "RUNNING",
  //   startedBy: "user-uuid",
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
