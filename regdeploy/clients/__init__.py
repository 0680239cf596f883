"""Container runtimes on client machines: what regdeploy writes so that they trust a registry
(``certs trust``) and pull through its caches (``clients mirror``).

One module per file format (containerd's ``hosts.toml`` and ``config.toml``, containers'
``registries.conf.d``, Docker's ``daemon.json``, k3s' ``registries.yaml``), each a pure builder over
text; :mod:`.trust` and :mod:`.mirror` apply them through :class:`regdeploy.certs.trust.ClientFiles`.
"""
