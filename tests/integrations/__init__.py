"""Tests of the SDK adapters in prism_storage.integrations."""
