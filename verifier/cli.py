"""The ``catalog-verifier`` command line (also ``python -m verifier``).

Exit codes: 0 ok, 1 operation failed (message on stderr), 2 usage or config error. Admin
subcommands open the database themselves (the embedded cluster too), so they work whether the
daemon runs or not.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from verifier import __version__
from verifier.config import Config, config_as_dict, load_config, render_toml
from verifier.database import Database
from verifier.exceptions import (
    CatalogVerifierError,
    ConfigError,
    DatabaseError,
    MigrationError,
    StartupError,
)
from verifier.logs import configure_logging
from verifier.migrations import migrate

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# "command words" -> "module:function"; each function is
# ``async def f(args, db, out) -> int`` and runs with a migrated database.
DB_COMMANDS: dict[str, str] = {
    "merchant add": "verifier.cli_catalog:merchant_add",
    "merchant list": "verifier.cli_catalog:merchant_list",
    "key create": "verifier.cli_catalog:key_create",
    "key list": "verifier.cli_catalog:key_list",
    "key revoke": "verifier.cli_catalog:key_revoke",
    "import": "verifier.cli_catalog:import_file",
    "verify": "verifier.cli_verify:verify",
    "sweep": "verifier.cli_sweep:sweep",
    "status": "verifier.cli_sweep:status",
}


class Output:
    """Prints records as JSON (``--json``) or as readable text."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def record(self, data: Any, text: str | None = None) -> None:
        """Print one record: JSON object, or ``text`` / ``key: value`` lines."""
        if self.as_json:
            sys.stdout.write(orjson.dumps(data, default=str).decode() + "\n")
        elif text is not None:
            print(text)
        elif isinstance(data, dict):
            for key, value in data.items():
                print(f"{key}: {value}")
        else:
            print(data)

    def error(self, message: str) -> None:
        print(f"catalog-verifier: error: {message}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML config file")
    common.add_argument("--json", action="store_true", help="print one JSON object")
    root = argparse.ArgumentParser(
        prog="catalog-verifier", parents=[common], description="Catalog verification daemon."
    )
    root.add_argument("--version", action="version", version=f"catalog-verifier {__version__}")
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("run", parents=[common], help="run the daemon")
    sub.add_parser("check-config", parents=[common], help="validate and print the config")
    sub.add_parser("migrate", parents=[common], help="apply database migrations")

    merchant = sub.add_parser("merchant", parents=[common], help="manage merchants")
    msub = merchant.add_subparsers(dest="action", required=True)
    add = msub.add_parser("add", parents=[common], help="create a merchant")
    add.add_argument("slug")
    add.add_argument("--host", action="append", required=True, dest="hosts")
    add.add_argument("--name")
    add.add_argument("--currency", default="EUR")
    msub.add_parser("list", parents=[common], help="list merchants")

    key = sub.add_parser("key", parents=[common], help="manage API keys")
    ksub = key.add_subparsers(dest="action", required=True)
    ksub.add_parser("create", parents=[common], help="create a key").add_argument("slug")
    ksub.add_parser("list", parents=[common], help="list a merchant's keys").add_argument("slug")
    ksub.add_parser("revoke", parents=[common], help="revoke a key").add_argument("key_id")

    imp = sub.add_parser("import", parents=[common], help="import products from a file")
    imp.add_argument("slug")
    imp.add_argument("file", help='NDJSON, JSON array or CSV; "-" reads stdin')
    imp.add_argument("--format", choices=["ndjson", "json", "csv"], help="default: guessed")

    verify = sub.add_parser("verify", parents=[common], help="verify one product now")
    verify.add_argument("slug")
    verify.add_argument("product_id")
    verify.add_argument("--wait", type=float, default=0.0, metavar="SECONDS")

    sweep = sub.add_parser("sweep", parents=[common], help="control a merchant's sweep")
    sweep.add_argument("action", choices=["start", "pause", "resume", "cancel", "status"])
    sweep.add_argument("slug")
    sweep.add_argument("--watch", action="store_true", help="status: follow until done")

    sub.add_parser("status", parents=[common], help="products, lanes and sweeps")
    return root


def _command_key(args: argparse.Namespace) -> str:
    action = getattr(args, "action", None)
    if args.command in ("merchant", "key"):
        return f"{args.command} {action}"
    return str(args.command)


async def _with_database(
    config: Config,
    func: Callable[[argparse.Namespace, Database, Output], Awaitable[int]],
    args: argparse.Namespace,
    out: Output,
) -> int:
    async with Database(config.database, config.data_dir) as db:
        async with db.pool.acquire() as conn:
            await migrate(conn)
        return await func(args, db, out)


async def _migrate(config: Config, out: Output) -> int:
    async with Database(config.database, config.data_dir) as db, db.pool.acquire() as conn:
        applied = await migrate(conn)
    out.record({"applied": applied}, text=f"applied migrations: {applied or 'none pending'}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    out = Output(args.json)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    command = _command_key(args)
    if command == "check-config":
        data = config_as_dict(config)
        out.record(data, text=render_toml(data))
        return EXIT_OK
    # Admin commands log only warnings to keep their output readable.
    configure_logging(config.log.level if command == "run" else "warning", config.log.format)
    try:
        if command == "run":
            from verifier.daemon import run_daemon

            return run_daemon(config, args.config)
        if command == "migrate":
            return asyncio.run(_migrate(config, out))
        module_name, _, func_name = DB_COMMANDS[command].partition(":")
        func = getattr(importlib.import_module(module_name), func_name)
        return asyncio.run(_with_database(config, func, args, out))
    except MigrationError as exc:
        out.error(str(exc))
        return EXIT_FAILED
    except (StartupError, DatabaseError) as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except CatalogVerifierError as exc:
        out.error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
