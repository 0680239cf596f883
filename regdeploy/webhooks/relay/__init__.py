"""The relay: registry push events in, CI requests out (GitHub repository_dispatch or a signed POST).

The registry cannot shape its notification body, and GitHub only starts workflows from a
``repository_dispatch`` request with its own body and a token. The relay sits between them:
it accepts the registry's envelopes, keeps the tag pushes that match a target's repository and
tag patterns in an on-disk queue per target (bounded; it survives restarts), and delivers each
with retries and exponential backoff.

``config`` reads its YAML file, ``queue`` is the on-disk queue, ``targets`` builds the outgoing
requests, ``service`` runs the receiver and one delivery worker per target.
"""
