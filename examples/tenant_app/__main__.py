"""``python -m examples.tenant_app``: ExampleNotes on ``HOST``:``PORT`` (127.0.0.1:5001)."""

from __future__ import annotations

import os

from .app import create_app
from .config import Config

DEFAULT_PORT = 5001


def main() -> None:
    config = Config.from_env(os.environ)
    host = os.environ.get("HOST") or "127.0.0.1"
    try:
        port = int(os.environ.get("PORT") or DEFAULT_PORT)
    except ValueError:
        raise SystemExit(f"PORT must be a number, not {os.environ['PORT']!r}") from None
    app = create_app(config)
    print(f"ExampleNotes: http://{host}:{port}/ (Connect Polar at {config.api_url})", flush=True)
    if not config.api_key:
        print(
            "  No CONNECT_POLAR_API_KEY: create a key on the workspace's billing page and set it, "
            f"or paste it on http://{host}:{port}/setup",
            flush=True,
        )
    app.run(host=host, port=port, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
