"""Container images on a host's engine: pull, build offline, ship over SSH."""
