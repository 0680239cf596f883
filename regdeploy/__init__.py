"""regdeploy: provision private Docker registries from an Ansible-style inventory."""

__version__ = "0.1.0"
