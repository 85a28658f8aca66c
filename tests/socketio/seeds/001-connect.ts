// Seed 001, "2. Connect to WebSocket After Joining", copied verbatim from the seed document.
import { io } from "socket.io-client";

// After successfully joining via API, connect to WebSocket
const socket = io();

// Join the session via WebSocket
socket.emit("join-session", sessionID);

// Listen for session updates
socket.on("session-update", (data) => {
	////console.log('Session updated:', data);
	// Update your UI with the new data
});

// Listen for join confirmation
socket.on("joined-session", ({ sessionID }) => {
	////console.log('Successfully joined session via WebSocket:', sessionID);
});

// Handle errors
socket.on("error", ({ message }) => {
	console.error("Socket error:", message);
});
