"""Adapters that let agent SDKs keep their state in a prism store."""
