"""``python -m polar_emulator --host 127.0.0.1 --port 8765``"""

from __future__ import annotations

import argparse
import socket

import uvicorn

from polar_emulator.app import create_app
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USER_EMAIL, EmulatorConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m polar_emulator", description="A local Polar.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--strict-webhook-urls",
        action="store_true",
        help="refuse loopback and private webhook URLs, as polar.sh",
    )
    parser.add_argument(
        "--webhook-retry-scale",
        type=float,
        default=1.0,
        help="multiply Polar's webhook retry delays (e.g. 0.01)",
    )
    parser.add_argument("--redirect-uri", action="append", help="the demo client's redirect URI (repeatable)")
    args = parser.parse_args(argv)
    config = EmulatorConfig(
        strict_webhook_urls=args.strict_webhook_urls, webhook_retry_scale=args.webhook_retry_scale
    )
    if args.redirect_uri:
        config.demo_redirect_uris = tuple(args.redirect_uri)
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    url = f"http://{args.host}:{sock.getsockname()[1]}"
    print(f"Polar emulator on {url}", flush=True)
    print(f"  demo client: POLAR_OAUTH_CLIENT_ID={DEMO_CLIENT_ID}", flush=True)
    print(f"               POLAR_OAUTH_CLIENT_SECRET={DEMO_CLIENT_SECRET}", flush=True)
    print(f"  redirect URIs: {', '.join(config.demo_redirect_uris)}", flush=True)
    print(f"  demo user on the consent page: {DEMO_USER_EMAIL}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")).run(
        sockets=[sock]
    )


if __name__ == "__main__":
    main()
