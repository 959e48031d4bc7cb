"""The HTTP edge: verify, dedup and enqueue Moneybird pushes. Imports no handler code."""
