"""Secrets, the state store, htpasswd, and each host's resolved materials."""
