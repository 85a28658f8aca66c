// Seed 003, "Product Showcase (Real-time)", Frontend Implementation, copied verbatim from the seed document.
// Creator: Showcase a product via WebSocket
socket.emit('showcase-product', {
  sessionId: 'session-uuid',
  productId: 'product-uuid'  // or null to clear
});

// Creator: Showcase a product via REST API (alternative)
fetch(`/api/sessions/${sessionId}/showcase`, {
  method: 'POST',
  headers: {
    'Content-Type': 'application/json',
    'Authorization': `Bearer ${token}`
  },
  body: JSON.stringify({ productId: 'product-uuid' })
});

// All viewers: Listen for showcase updates
socket.on('product-showcased', (data) => {
  // data: { sessionId, productId, product: { id, name, price, imageUrl, ... } }
  // Display showcased product prominently (e.g., modal, overlay, sidebar)
  displayShowcasedProduct(data.product);
});

socket.on('showcase-cleared', (data) => {
  // data: { sessionId }
  // Hide showcased product display
  hideShowcasedProduct();
});
