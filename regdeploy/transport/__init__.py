"""How regdeploy reaches a host: its filesystem, its ports and its Docker engine."""

from regdeploy.transport.base import FileState, Transport
from regdeploy.transport.factory import open_transport

__all__ = ["FileState", "Transport", "open_transport"]
