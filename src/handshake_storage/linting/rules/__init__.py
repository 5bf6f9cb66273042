"""The rule units, one small module per family; the registry collects every
:class:`~handshake_storage.linting.rule.Rule` defined in them."""
