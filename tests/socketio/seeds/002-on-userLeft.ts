// Seed 002, "userLeft", copied verbatim from the seed document.
socket.on("userLeft", (data) => {
  console.log(data);
  // {
  //   userId: "user-uuid"
  //   timestamp: "2025-12-19T08:00:00.000Z"
  // }
});
