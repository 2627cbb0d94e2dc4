"""sdctl's built-in runtime: an AUTOMATIC1111-compatible HTTP API on diffusers."""
