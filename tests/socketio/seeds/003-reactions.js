// Seed 003, "Real-time Reaction Tracking", Frontend Implementation, copied verbatim from the seed document.
// Send a reaction
socket.emit('send-reaction', {
  sessionId: 'session-uuid',
  type: 'heart'  // Can be: like, heart, fire, clap, or custom
});

// Listen for individual reactions (for animations)
socket.on('new-reaction', (data) => {
  // data: { type: 'heart', timestamp: Date }
  // Show floating emoji animation
  animateReaction(data.type);
});

// Listen for aggregated reaction stats (for dashboard)
socket.on('reaction-stats', (data) => {
  // data: { sessionId, counts: { like: 50, heart: 100 }, total: 150 }
  updateReactionDisplay(data.counts);
});
