"""``python -m handshake_storage``: the same command line as ``handshake-storage``."""

from .cli import main

main(prog_name="handshake-storage")
