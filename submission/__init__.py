"""Submission validation and packaging (needs neither jittor nor torch)."""
