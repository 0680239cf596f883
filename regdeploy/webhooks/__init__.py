"""Registry notifications: sample envelopes, a test sender, a debugging listener, and the relay.

The registry posts one JSON envelope per event to each configured endpoint (see
``envelope``). regdeploy can send a sample of that envelope before the first push
(``sender``), print what a registry sends (``listener``), and turn push events into
requests a CI service accepts when the registry cannot send them itself (``relay``).
"""
