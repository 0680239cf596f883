"""The typed, validated form of a host's inventory settings."""
