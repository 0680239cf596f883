"""The built-in token server: the distribution token protocol, standalone, from one YAML file.

A registry in token mode sends clients here (its ``auth.token.realm``) with a scope; the server
checks the credentials (an htpasswd-style user file, or a CI job's OIDC JWT), grants the subset of
the requested actions that the first matching ACL entry allows, and answers with an ES256 token
the registry trusts through its ``rootcertbundle``.

``scope`` parses requested scopes, ``acl`` decides what an account gets, ``users`` checks passwords
(re-reading the file when it changes), ``oidc`` verifies CI identities, ``issue`` signs tokens,
``config`` reads the YAML file, ``app`` is the WSGI request logic and ``server`` runs it under
cheroot with TLS. ``watch`` notices when a file was replaced.
"""
