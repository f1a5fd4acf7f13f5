"""`q2c portal`: run the customer portal, and revoke a per-invoice link.

    q2c portal serve [--host 127.0.0.1] [--port 8080] [--warehouse duckdb|postgres]
    q2c portal revoke-link TOKEN_OR_LINK [--reason TEXT] [--by NAME]

`serve` runs the portal with uvicorn; put it behind a reverse proxy with TLS and set
Q2C_PORTAL_BASE_URL to the public https URL (docs/portal.md). uvicorn's access log is off:
it writes paths whole, and a path such as `/documents/<token>` opens an invoice. The portal
writes its own line per request instead, with such tokens replaced by `…`
(`q2c.portal.app.RequestLogMiddleware`), on standard output. Imports of Starlette and
uvicorn stay inside the commands, so `q2c --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import logging
import os
import sys

from q2c.portal.dispute_cli import add_parser as add_disputes_parser
from q2c.settings import Settings, load_settings


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add `portal` and its subcommands to the `q2c` command."""
    portal = commands.add_parser(
        "portal", help="the customer portal: serve it, revoke a per-invoice link, work disputes")
    actions = portal.add_subparsers(dest="portal_command", required=True)

    serve = actions.add_parser("serve", help="run the portal (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default loopback: the reverse proxy "
                            "forwards the public URL here)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--warehouse", choices=["duckdb", "postgres"],
                       default=os.environ.get("Q2C_PORTAL_WAREHOUSE", "duckdb"),
                       help="where customer data is read: the DuckDB file (default) or the "
                            "Postgres warehouse of the Q2C_PG_* variables "
                            "(Q2C_PORTAL_WAREHOUSE)")
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1",
                       help="proxies whose X-Forwarded-For/-Proto are trusted: name "
                            "only the reverse proxy, which must append or overwrite "
                            "X-Forwarded-For (default 127.0.0.1, the proxy on this machine)")

    revoke = actions.add_parser(
        "revoke-link", help="stop a per-invoice link from working and end its sessions")
    revoke.add_argument("link", metavar="TOKEN_OR_LINK",
                        help="the link from the invoice email, or its token")
    revoke.add_argument("--reason", default="", help="why (kept with the revocation)")
    revoke.add_argument("--by", default=None,
                        help="who revokes it (default: the operating-system user)")
    portal.set_defaults(func=_cmd_portal)
    add_disputes_parser(actions)


def _cmd_portal(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.portal_command == "revoke-link":
        from q2c.opsdb import connect
        from q2c.portal.links import revoke_link

        by = args.by or getpass.getuser()
        try:
            with connect(settings.ops_store) as conn:
                done = revoke_link(conn, settings.portal_store, args.link, by=by,
                                   reason=args.reason or None)
        except ValueError as exc:
            print(f"q2c portal revoke-link: {exc}", file=sys.stderr)
            return 2
        state = "revoked" if done.new else "was already revoked"
        print(f"Link {done.link_id[:12]}... {state} (account {done.account_key or '?'}, "
              f"invoice {done.invoice_id or '?'}); {done.sessions_ended} session(s) ended.")
        return 0

    import uvicorn

    from q2c.portal.app import REQUEST_LOGGER, create_app

    settings = _base_url_served(settings, args.host, args.port)
    app = create_app(settings, warehouse=args.warehouse)
    print(f"Customer portal on http://{args.host}:{args.port} for "
          f"{settings.portal_base_url} (warehouse: {args.warehouse}; Ctrl-C stops)",
          flush=True)
    _log_requests(logging.getLogger(REQUEST_LOGGER))
    uvicorn.run(app, host=args.host, port=args.port, proxy_headers=True,
                forwarded_allow_ips=args.forwarded_allow_ips, server_header=False,
                log_level="info", access_log=False)
    return 0


def _base_url_served(settings: Settings, host: str, port: int) -> Settings:
    """Without Q2C_PORTAL_BASE_URL, the portal's address is the one it is served at.

    The base URL makes the links in mails and is the only origin forms are taken from, so a
    default that names another port would refuse every form a browser posts.
    """
    if settings.portal_base_url != Settings.portal_base_url or host in ("0.0.0.0", "::"):
        return settings
    served = f"http://{host}:{port}"
    if served == settings.portal_base_url:
        return settings
    return dataclasses.replace(settings, portal_base_url=served)


def _log_requests(log: logging.Logger) -> None:
    """The portal's request lines on standard output, where uvicorn's access log went."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
