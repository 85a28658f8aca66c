// Seed 002, "prompt.updated", copied verbatim from the seed document.
socket.on("prompt.updated", (data) => {
  console.log(data);
  // {
  //   sessionId: "session-uuid",
  //   roundId: "round-uuid",
  //   roundIndex: 1,
  //   prompt: "What is the main idea?",
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
