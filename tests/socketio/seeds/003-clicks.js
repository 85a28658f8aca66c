// Seed 003, "Product Click Tracking (Real-time)", Frontend Implementation, copied verbatim from the seed document.
// Viewer: Track a product click when user clicks on a product
socket.emit('track-product-click', {
  sessionId: 'session-uuid',
  productId: 'product-uuid',
  userId: currentUser?.id || null  // null for anonymous users
});

// Creator Dashboard: Listen for detailed click statistics
socket.on('product-click-stats', (data) => {
  // data: {
  //   sessionId: 'uuid',
  //   productStats: [
  //     {
  //       productId: 'uuid',
  //       uniqueClicks: 42,
  //       totalClicks: 67,
  //       clickThroughRate: 15.5
  //     }
  //   ],
  //   totalViewers: 271,
  //   timestamp: '2025-11-22T...'
  // }

  // Update creator dashboard with conversion metrics
  updateConversionDashboard(data);
});

// All Viewers: Listen for trending products (top 5)
socket.on('trending-products', (data) => {
  // data: {
  //   sessionId: 'uuid',
  //   products: [
  //     { productId: 'uuid', uniqueClicks: 42, totalClicks: 67, clickThroughRate: 15.5 }
  //   ],
  //   timestamp: '2025-11-22T...'
  // }

  // Display trending products to viewers
  updateTrendingProductsList(data.products);
});

// Fetch historical conversion data after stream ends
const response = await fetch(`/api/sessions/${sessionId}/conversion-stats`);
const { data } = await response.json();
console.log('Historical conversion data:', data);
