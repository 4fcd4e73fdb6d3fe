"""The task data: reading a data folder (loading.py) and rebuilding it from the public originals (originals.py)."""
