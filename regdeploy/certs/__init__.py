"""Certificates for registries: issue, renew, import, inspect and trust. Builds on ``regdeploy.pki``.

- issue:   TlsIssuer, a host's TlsMaterial for each tls.mode (used by ``up`` and ``certs``)
- csr:     the csr mode's CSR and import steps
- lookup:  read-only look-ups of the CA and server chain in use
- show:    status of each certificate (``certs show``)
- trust:   certs.d and system trust store on client machines (``certs trust``)
- notices: warnings that do not stop a run (CA expiry, plain HTTP)
- store, chain, files: state-store keys, bundle handling, private file writes
"""
