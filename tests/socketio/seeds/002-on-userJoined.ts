// Seed 002, "userJoined", copied verbatim from the seed document.
socket.on("userJoined", (data) => {
  console.log(data);
  // {
  //   userId: "user-uuid",
  //   userName: "John Doe",
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
