"""Small helpers that every tool shares: argument checks, model inputs, image sources and run directories."""
