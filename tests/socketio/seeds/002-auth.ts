// Seed 002, "Authentication", Method 1: Auth Object, copied verbatim from the seed document.
import { io } from "socket.io-client";

const socket = io("http://localhost:8000/study-groups", {
  auth: {
    token: "your-jwt-token", // No 'Bearer' prefix needed
  },
});
