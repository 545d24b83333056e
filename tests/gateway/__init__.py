"""Tests of the built-in test payment gateway."""
