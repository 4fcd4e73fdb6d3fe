"""Bulk scoring on Ray Data: files cut into parts (sources.py), scored by a pool of actors (job.py).
Needs requirements-bulk.txt; the app never imports this package."""
