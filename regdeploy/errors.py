"""The error hierarchy and the exit codes it maps to.

Expected errors print as one line (``str(exc)``) naming the user's file, key or argument.
Anything else is a bug: the CLI writes its traceback to a log file and says where.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a host failed or a check failed
EXIT_INPUT = 2  # bad input: usage, inventory, spec


class RegdeployError(Exception):
    """Base of every expected error. ``str()`` is the one line shown to the user."""

    exit_code = EXIT_FAILED


class InputError(RegdeployError):
    """The user's input is wrong: nothing was changed anywhere."""

    exit_code = EXIT_INPUT


class InventoryError(InputError):
    """The inventory (or its group_vars/host_vars) cannot be read."""


class SpecError(InputError):
    """A ``registry:`` setting is invalid."""


class SecretError(InputError):
    """A secret reference cannot be resolved (unset variable, missing file)."""


class HostError(RegdeployError):
    """Something on one host is wrong or failed; other hosts carry on."""


class TransportError(HostError):
    """The host (its filesystem, SSH or Docker engine) cannot be reached or refused an operation."""


class ImageError(HostError):
    """The registry image is absent and cannot be pulled, built or loaded."""


class ApplyError(HostError):
    """Applying the plan failed; the message says what was rolled back."""


def describe_network_error(exc: OSError, timeout: float) -> str:
    """One line for a request that got no answer (refused, timed out, name, TLS, reset)."""
    import socket
    import ssl

    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {getattr(exc, 'reason', None) or exc}"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    return f"{type(exc).__name__}: {exc.strerror or exc}"
