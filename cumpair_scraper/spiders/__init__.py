"""Spiders. Shops need no spider of their own: `ShopSpiderLoader` builds one per config."""
