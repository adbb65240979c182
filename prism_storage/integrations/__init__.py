"""Adapters that let agent SDKs persist through a prism store (one module per SDK)."""
