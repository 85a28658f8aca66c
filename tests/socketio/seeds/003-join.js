// Seed 003, "Viewer Tracking & Role-Based Counting", What Frontend Should Do, copied verbatim from the seed document.
// For ALL users (viewers and publishers), send the same payload:
socket.emit('join-session', {
  sessionId: 'session-uuid',
  userId: currentUser?.id  // undefined for guests
});

// Backend automatically determines if they're publisher or subscriber
// No need to send a 'role' field
