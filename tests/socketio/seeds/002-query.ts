// Seed 002, "Authentication", Method 2: Query Parameters, copied verbatim from the seed document.
const socket = io("http://localhost:8000/study-groups?token=your-jwt-token");
