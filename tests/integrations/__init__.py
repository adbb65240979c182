"""Tests of the agent SDK adapters."""
