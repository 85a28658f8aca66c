// Seed 002, "chat.message", copied verbatim from the seed document.
socket.on("chat.message", (data) => {
  console.log(data);
  // {
  //   sessionId: "session-uuid",
  //   roundIndex: 1,
  //   message: "I think the answer is A",
  //   userId: "user-uuid",
  //   userName: "John Doe",
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
