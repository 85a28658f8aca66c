// Seed 002, "sharedCard.created", copied verbatim from the seed document.
socket.on("sharedCard.created", (data) => {
  console.log(data);
  // {
  //   sessionId: "session-uuid",
  //   roundId: "round-uuid",
  //   roundIndex: 1,
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
