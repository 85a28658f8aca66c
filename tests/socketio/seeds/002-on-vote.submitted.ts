// Seed 002, "vote.submitted", copied verbatim from the seed document.
socket.on("vote.submitted", (data) => {
  console.log(data);
  // {
  //   sessionId: "session-uuid",
  //   roundId: "round-uuid",
  //   roundIndex: 1,
  //   userId: "user-uuid",
  //   eventType: "PI_VOTE_SUBMIT",
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
