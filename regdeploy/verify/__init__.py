"""``regdeploy verify``: prove a deployed registry works end to end, as a client would.

One module per concern — ``net`` (tcp, tls), ``auth``, ``engine`` (push/pull through the Docker engine,
with ``trust`` for certs.d), ``api`` (push/pull through the HTTP API, its image from ``smoke``),
``catalog``, ``notifications``, ``persistence``, ``cleanup`` — ``checks`` (the table and selection),
``runner`` (order, parallel phases, timing, masking) and ``report`` (JSON and table).

Nothing is imported here: the CLI loads ``checks`` on every start and must stay cheap.
"""
