"""Tag retention: the pure policy (policy.py) and the registry API walk that feeds it (scan.py)."""
