"""What every part of ``regdeploy.pki`` shares: the error type, UTC handling and certificate loading."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509

from regdeploy.errors import InputError

# Leaves are backdated by this much so a host whose clock runs a little behind ours accepts them.
CLOCK_SKEW_MINUTES = 5


class PkiError(InputError):
    """A key, certificate, CSR or PKI parameter is unusable. The message never contains key material."""


def utc_now(now: datetime | None) -> datetime:
    """``now`` as an aware UTC datetime (the current time when None).

    A naive datetime is a programming error, not user input: guessing its zone would silently shift
    validity windows, so it raises ValueError rather than PkiError.
    """
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def load_cert(pem: bytes, what: str = "certificate") -> x509.Certificate:
    """The first certificate of ``pem``; PkiError naming ``what`` when there is none or it is corrupt."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        # from None: the parser's message adds nothing a user can act on.
        raise PkiError(f"{what} is not a readable PEM certificate") from None


def rfc_date(moment: datetime) -> str:
    """A short, unambiguous timestamp for messages."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")
