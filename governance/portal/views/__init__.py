"""The portal's pages, one module per area; each reads through selectors and writes through services."""
