"""A small shop: prices, carts, stock and discounts (covsweep's bundled example)."""
