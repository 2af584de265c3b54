"""Tests of the tenant portal (CONTRACT §6)."""
