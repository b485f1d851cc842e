"""``catalog-verifier verify SLUG PRODUCT_ID [--wait SECONDS]``."""

from __future__ import annotations

import argparse
import asyncio
import time

from verifier.cli import Output
from verifier.database import Database
from verifier.merchants import MerchantStore
from verifier.verify_requests import get_verification, render_verification, request_verification


async def verify(args: argparse.Namespace, db: Database, out: Output) -> int:
    """Queue a verification (the running daemon picks it up) and optionally wait for it."""
    merchant = await MerchantStore(db).get(args.slug)
    row = await request_verification(db, merchant.id, args.product_id)
    deadline = time.monotonic() + max(0.0, args.wait)
    while row["state"] != "done" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        fresh = await get_verification(db, merchant.id, row["id"])
        if fresh is None:
            break
        row = fresh
    body = await render_verification(db, row)
    text = f"verification {body['verification_id']}: {body['status']}"
    if body["outcome"]:
        text += f", outcome {body['outcome']}"
        if body["error"]:
            text += f" ({body['error']})"
    out.record(body, text=text)
    return 0
