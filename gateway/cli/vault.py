"""`lethe vault rewrap`: re-wrap every sealed data key and secret under the current master key (rotation,
docs/data.md)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.config import load_config
from gateway.ledger import Ledger
from gateway.ledger.vault import Vault


def cmd_vault_rewrap(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    ledger = Ledger.open(config.ledger_url, vault=Vault.from_environment(config.home))
    try:
        changed = ledger.rewrap()
    finally:
        ledger.close()
    print(f"re-wrapped {changed} keys under master key {ledger.vault.key_id}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    vault = sub.add_parser("vault", help="the master key that seals forgotten content (docs/data.md)")
    vault_sub = vault.add_subparsers(dest="vault_command", required=True)
    rewrap = vault_sub.add_parser(
        "rewrap",
        parents=[common],
        help="re-wrap every data key under the current master key (after adding a new one; then drop the old)",
    )
    rewrap.set_defaults(func=cmd_vault_rewrap)
