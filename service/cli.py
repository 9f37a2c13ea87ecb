"""The ``taskhook`` command (also ``python -m service``).

Administrative commands work on the database directly, so an operator can create the first
account and key before anything is served. Results go to stdout (a raw key always as the last
line); logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import uvicorn
import uvloop

from service import replay, usecases
from service.app import (
    build_background,
    build_upstream,
    create_app,
    fleet_listener,
    open_store,
    open_when_ready,
    provider_client,
    secret_box,
    simulator_config,
)
from service.core.clock import system_clock
from service.errors import ConfigError, TaskhookError
from service.logs import configure_logging, get_logger
from service.providers.simulator import create_simulator_app
from service.settings import Settings, load_settings
from service.store.base import Store
from service.store.postgres.copy import copy_database
from service.wakeup import WakeListener, wake_address

T = TypeVar("T")
log = get_logger("taskhook.cli")
#: net container allocations between young-generation collections (CPython's default: 700)
GC_YOUNG_THRESHOLD = 50_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskhook", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to bind (default from config)")
    serve.add_argument("--port", type=int, help="port to bind (default from config / PORT)")

    commands.add_parser("worker", help="run the submitter and reconciler without HTTP")
    simulator = commands.add_parser("simulator", help="run the provider simulator alone")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=8100)

    db = commands.add_parser("db", help="database maintenance").add_subparsers(
        dest="action", required=True
    )
    db.add_parser("migrate", help="apply pending migrations")
    copy = db.add_parser(
        "copy",
        help="copy the SQLite database into an empty PostgreSQL one, then verify the copy",
    )
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql://USER@HOST/DB")
    copy.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        help="sqlite:///PATH (default: the configured SQLite database)",
    )

    accounts = commands.add_parser("accounts", help="manage accounts").add_subparsers(
        dest="action", required=True
    )
    create_account = accounts.add_parser("create", help="create an account; prints its id")
    create_account.add_argument("name")
    create_account.add_argument("--credits", type=int, default=0, help="initial grant")

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create_key = keys.add_parser("create", help="create a key; prints it once, last line")
    create_key.add_argument("--account", required=True, help="account id")
    create_key.add_argument("--admin", action="store_true", help="an operator key")
    revoke_key = keys.add_parser("revoke", help="revoke a key by its id (key_…)")
    revoke_key.add_argument("key_id")

    credits_ = commands.add_parser("credits", help="manage credits").add_subparsers(
        dest="action", required=True
    )
    grant = credits_.add_parser("grant", help="add credits to an account")
    grant.add_argument("account_id")
    grant.add_argument("amount", type=int)

    replays = commands.add_parser(
        "replay", help="send events again, recover an endpoint, re-apply a callback (any account)"
    ).add_subparsers(dest="action", required=True)
    event = replays.add_parser("event", help="send an event again as new deliveries")
    event.add_argument("event_id")
    event.add_argument("--endpoint", help="only this endpoint (default: every one subscribed now)")
    endpoint = replays.add_parser("endpoint", help="re-send an endpoint's failed deliveries")
    endpoint.add_argument("endpoint_id")
    endpoint.add_argument("--since", required=True, help="RFC 3339; failures created from then")
    endpoint.add_argument("--until", help="RFC 3339; failures created before then (default: all)")
    endpoint.add_argument("--dry-run", action="store_true", help="only count them")
    callback = replays.add_parser("callback", help="re-apply a kept provider callback")
    callback.add_argument("callback_id")

    stored = commands.add_parser("secrets", help="stored endpoint secrets").add_subparsers(
        dest="action", required=True
    )
    stored.add_parser(
        "reencrypt",
        help="move every stored secret to the current TASKHOOK_SECRET_KEY (then the old key "
        "can leave TASKHOOK_SECRET_KEY_PREVIOUS)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"taskhook: configuration error: {exc.message}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.format, settings.logging.level)
    if args.command == "serve":
        collect_garbage_rarely()
        try:
            return _serve(settings, args.host, args.port)
        except ConfigError as exc:  # what only building the app finds (no provider enabled)
            print(f"taskhook: configuration error: {exc.message}", file=sys.stderr)
            return 2
    if args.command == "worker":
        collect_garbage_rarely()
        # uvloop, as `serve` runs under: the delivery worker's sends are its hot path.
        try:
            return uvloop.run(_worker(settings))
        except TaskhookError as exc:  # the database unreachable at start: said, not traced
            print(f"taskhook: {exc.message}", file=sys.stderr)
            return 1
    if args.command == "simulator":
        return _simulator(settings, args.host, args.port)
    try:
        return _run_admin(settings, args)
    except TaskhookError as exc:
        print(f"taskhook: {exc.message}", file=sys.stderr)
        return 1


def collect_garbage_rarely() -> None:
    """Tune CPython's cycle collector for a long-running server (``serve``, ``worker``).

    Our garbage is freed by reference counting; the collector only finds cycles. By default it
    runs every 700 net allocations, which under load is every few dozen requests, and each run
    walks every object the requests in flight hold (coroutines, frames, rows): about 2 ms each,
    finding nothing: 4 to 5% of a busy process's CPU, plus a full collection of everything every
    hundred runs (50 ms). Running it every 50 000 allocations leaves at most that many objects
    of uncollected cycles; freezing what exists at the call (the modules loaded, the settings)
    keeps full collections from walking it at all."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    service = replace(
        settings.service,
        host=host or settings.service.host,
        port=settings.service.port if port is None else port,
    )
    settings = replace(settings, service=service)
    config = uvicorn.Config(
        create_app(settings),
        host=service.host,
        port=service.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # our middleware logs each request, with callback tokens redacted
        log_config=None,
        lifespan="on",
        server_header=False,
    )
    uvicorn.Server(config).run()
    return 0


async def _worker(settings: Settings) -> int:
    """The Procfile's ``worker:``: the background loops, stopped cleanly by SIGTERM or SIGINT."""
    store = open_store(settings)
    await open_when_ready(store)
    client = provider_client(settings)
    background = build_background(settings, store, client, system_clock)
    listener = WakeListener(wake_address(settings.storage.database_path), background.waker)
    fleet = fleet_listener(settings, background.waker)
    if fleet is not None:  # PostgreSQL: LISTEN/NOTIFY, from every host
        fleet.start()
        listening = True
    else:
        listening = listener.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    background.workers.start()
    log.info("worker.started", woken_by_web=listening)
    try:
        await stop.wait()
    finally:
        listener.close()
        if fleet is not None:
            await fleet.close()
        await background.close()
        await client.aclose()
        await store.close()
    return 0


def _simulator(settings: Settings, host: str, port: int) -> int:
    """The simulator alone, as configured for this environment: with its key in production and
    calling back only where deliveries may go (``[simulator] enabled`` is for ``serve``)."""
    app = create_simulator_app(simulator_config(settings, f"http://{host}:{port}"))
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return 0


def _run_admin(settings: Settings, args: argparse.Namespace) -> int:
    def with_store(work: Callable[[Store], Awaitable[T]]) -> T:
        async def run() -> T:
            store = open_store(settings)
            await store.open()
            try:
                return await work(store)
            finally:
                await store.close()

        return asyncio.run(run())

    clock = system_clock
    match (args.command, args.action):
        case ("db", "migrate"):
            print(
                "\n".join(f"applied {name}" for name in asyncio.run(_migrate(settings)))
                or "database is up to date"
            )
        case ("db", "copy"):
            print(asyncio.run(_copy(settings, args.source, args.to)))
        case ("accounts", "create"):
            account = with_store(
                lambda s: usecases.create_account(s, clock, args.name, args.credits)
            )
            print(account.id)
        case ("keys", "create"):
            key, raw = with_store(
                lambda s: usecases.create_api_key(s, clock, args.account, admin=args.admin)
            )
            print(f"key id: {key.id}  account: {key.account_id}  admin: {key.is_admin}")
            print("This key is shown once; store it now:")
            print(raw)
        case ("keys", "revoke"):
            with_store(lambda s: usecases.revoke_api_key(s, clock, args.key_id))
            print(f"revoked {args.key_id}")
        case ("credits", "grant"):
            entry = with_store(
                lambda s: usecases.grant_credits(s, clock, args.account_id, args.amount)
            )
            print(f"{entry.id} +{entry.delta}")
        case ("replay", _):
            print(asyncio.run(_replay(settings, args)))
        case ("secrets", "reencrypt"):
            moved = with_store(lambda s: s.reencrypt_secrets())
            key_id = secret_box(settings).current.key_id
            noun = "secret" if moved == 1 else "secrets"
            print(f"{moved} stored {noun} moved to the current key (key id {key_id})")
        case _:  # argparse makes this unreachable
            raise AssertionError(args)
    return 0


async def _replay(settings: Settings, args: argparse.Namespace) -> str:
    """Replays as the operator: ids are looked up in every account. Returns the summary line.
    Deliveries are only queued here; a running worker picks them up on its next poll."""
    store = open_store(settings)
    await store.open()
    try:
        if args.action == "event":
            replayed = await replay.replay_event(
                store, system_clock, account_id=None, event_id=args.event_id,
                endpoint_id=args.endpoint,
            )  # fmt: skip
            targets = ", ".join(d.endpoint_id for d in replayed.deliveries) or "no endpoint"
            count = _deliveries(len(replayed.deliveries))
            return f"replayed {replayed.event.id}: {count} queued ({targets})"
        if args.action == "endpoint":
            request = replay.parse_recover(
                {"since": args.since, "until": args.until, "dry_run": args.dry_run}
            )
            recovered = await replay.recover_endpoint(
                store, system_clock, account_id=None, endpoint_id=args.endpoint_id,
                request=request,
            )  # fmt: skip
            what = "to re-send (dry run)" if recovered.dry_run else "queued again"
            return f"{recovered.endpoint.id}: {_deliveries(recovered.count, 'failed ')} {what}"
        client = provider_client(settings)
        try:
            up = build_upstream(settings, store, client, system_clock)
            record = await replay.replay_callback(up, account_id=None, callback_id=args.callback_id)
        finally:
            await client.aclose()
        return f"{record.id} ({record.task_id}): {record.outcome}"
    finally:
        await store.close()


def _deliveries(count: int, kind: str = "") -> str:
    return f"{count} {kind}{'delivery' if count == 1 else 'deliveries'}"


async def _copy(settings: Settings, source: str | None, target: str) -> str:
    """``db copy``: the summary of a verified copy (errors raise, with the password redacted)."""
    storage = settings.storage
    if source is not None:
        if not source.startswith("sqlite:///"):
            raise ConfigError("--from takes a sqlite:///PATH URL")
        storage = replace(storage, url=source)
    elif storage.is_postgres:
        raise ConfigError("the configured database is PostgreSQL; name the SQLite one with --from")
    if not replace(storage, url=target).is_postgres:
        raise ConfigError("--to takes a postgresql:// URL")
    report = await copy_database(storage.database_path, target, secret_box(settings))
    return report.summary()


async def _migrate(settings: Settings) -> list[str]:
    store = open_store(settings, migrate=True)
    applied = await store.open()
    await store.close()
    return applied
