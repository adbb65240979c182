"""Storage backends. Each module imports its client library only when first used."""
