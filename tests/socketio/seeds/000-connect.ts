// Seed 000, "2. Connect to WebSocket (Client-side)", copied verbatim from the seed document.
import { io } from 'socket.io-client';

// Connect to the WebSocket server
const socket = io();

// Join the session
socket.emit('join-session', sessionID);

// Listen for session updates
socket.on('session-update', (data) => {
  console.log('Session updated:', data);
  // Update your UI with the new data
});

// Listen for join confirmation
socket.on('joined-session', ({ sessionID }) => {
  console.log('Successfully joined session:', sessionID);
});

// Handle errors
socket.on('error', ({ message }) => {
  console.error('Socket error:', message);
});

// Clean up on unmount
return () => {
  socket.disconnect();
};
