"""TLS material for registries: pure builders and inspectors, PEM bytes in and out.

Nothing here touches files, hosts or the network; saving keys and certificates is the caller's job.
Errors about user material raise PkiError (an InputError) whose message never contains key material.

- keys:  generate_key, load_private_key, KEY_TYPES
- build: make_ca, issue_server_cert, make_csr, sign_csr
- check: cert_info, split_chain, key_matches_cert, issued_by, sans_cover, reissue_reason, validation_problems
"""

from __future__ import annotations

from regdeploy.pki._base import PkiError
from regdeploy.pki.build import issue_server_cert, make_ca, make_csr, sign_csr
from regdeploy.pki.check import (
    CertInfo,
    cert_info,
    issued_by,
    key_matches_cert,
    reissue_reason,
    sans_cover,
    split_chain,
    validation_problems,
)
from regdeploy.pki.keys import KEY_TYPES, KeyType, PrivateKey, generate_key, load_private_key

__all__ = [
    "KEY_TYPES",
    "CertInfo",
    "KeyType",
    "PkiError",
    "PrivateKey",
    "cert_info",
    "generate_key",
    "issue_server_cert",
    "issued_by",
    "key_matches_cert",
    "load_private_key",
    "make_ca",
    "make_csr",
    "reissue_reason",
    "sans_cover",
    "sign_csr",
    "split_chain",
    "validation_problems",
]
