// Seed 002, "revote.submitted", copied verbatim from the seed document.
socket.on("revote.submitted", (data) => {
  console.log(data);
  // {
  //   sessionId: "session-uuid",
  //   roundId: "round-uuid",
  //   roundIndex: 1,
  //   userId: "user-uuid",
  //   eventType: "PI_REVOTE_SUBMIT",
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
