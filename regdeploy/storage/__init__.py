"""Object storage the registry keeps its data in: reachability and access checks (S3)."""
