// Seed 001, "Complete Flow Example", copied verbatim from the seed document.
async function joinSession(sessionID: string) {
	try {
		// Step 1: Validate session exists
		const response = await fetch("/api/session/join", {
			method: "POST",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({ sessionID }),
		});

		if (!response.ok) {
			const error = await response.json();
			throw new Error(error.message);
		}

		const { sessionData } = await response.json();

		// Step 2: Connect to WebSocket
		const socket = io();

		socket.emit("join-session", sessionID);

		socket.on("joined-session", () => {
			////console.log('Connected to session!');
		});

		socket.on("session-update", (data) => {
			// Handle real-time updates
			////console.log('Update received:', data);
		});

		return { socket, sessionData };
	} catch (error) {
		console.error("Failed to join session:", error);
		throw error;
	}
}

// Usage
const { socket, sessionData } = await joinSession("123456");
