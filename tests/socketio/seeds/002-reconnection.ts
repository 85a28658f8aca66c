// Seed 002, "Reconnection", copied verbatim from the seed document.
socket.on("connect", () => {
  if (activeSessionId) {
    socket.emit("joinSession", { sessionId: activeSessionId });
    // Sync state
    queryClient.invalidateQueries({ queryKey: ["session", activeSessionId] });
  }
});
