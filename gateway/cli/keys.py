"""`lethe keys create|list|revoke`: API keys over the operator API (`/v1/admin/keys`; an operator key or
LETHE_ADMIN_TOKEN). A new key is printed once, on stdout alone, so it can be piped into a secret store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli.client import OperatorClient
from gateway.ledger.actors import Role


def _client(args: argparse.Namespace) -> OperatorClient:
    return OperatorClient(args.url, args.token)


def cmd_keys_create(args: argparse.Namespace) -> int:
    created = _client(args).post("/v1/admin/keys", {"name": args.name, "role": args.role})
    if args.json:
        print(json.dumps(created, indent=2))
        return 0
    print(
        f"created {created['role']} key {created['id']} ({created['name']}); it is shown this once, "
        "only its hash is stored:",
        file=sys.stderr,
    )
    print(created["key"])
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    listing = _client(args).get("/v1/admin/keys", include_revoked=str(args.all).lower())
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for key in listing["data"]:
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        print(f"{key['id']}  {key['role']:<9} {key['prefix']}…  {key['name']:<24} {state}  by {key['created_by']}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    key = _client(args).post(f"/v1/admin/keys/{args.id}/revoke")
    print(f"revoked {key['id']} ({key['name']}, {key['role']}) at {key['revoked_at']}")
    return 0


def register(sub: Any, remote: argparse.ArgumentParser) -> None:
    """Add `lethe keys …` to the `lethe` parser (`remote`: the --url/--token options)."""
    keys = sub.add_parser("keys", help="API keys with one role each (operator API)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", parents=[remote], help="make a key (printed once) with one role")
    create.add_argument("name", help="who or what holds it; recorded as the actor of all it does")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--json", action="store_true", help="print the API's JSON (the key included)")
    create.set_defaults(func=cmd_keys_create)
    lst = keys_sub.add_parser("list", parents=[remote], help="keys (never the keys themselves)")
    lst.add_argument("--all", action="store_true", help="revoked keys too")
    lst.add_argument("--json", action="store_true", help="print the API's JSON")
    lst.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", parents=[remote], help="revoke a key by id")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_keys_revoke)
