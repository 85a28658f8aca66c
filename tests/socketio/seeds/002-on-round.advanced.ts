// Seed 002, "round.advanced", copied verbatim from the seed document.
socket.on("round.advanced", (data) => {
  console.log(data);
  // {
  //   sessionId: "session-uuid",
  //   roundId: "round-uuid",
  //   roundIndex: 1,
  //   status: "VOTING" | "DISCUSSING" | "REVOTING" | "EXPLAINING" | "DONE",
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
