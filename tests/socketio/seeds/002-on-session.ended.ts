// Seed 002, "session.ended", copied verbatim from the seed document.
socket.on("session.ended", (data) => {
  console.log(data);
  // {
  //   sessionId: "session-uuid",
  //   status: "FINISHED",
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
