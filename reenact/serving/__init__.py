"""Serving: local Triton runtime, repository builder, server harness, backend helpers."""
