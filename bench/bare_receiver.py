"""The least a webhook receiver does, as the baseline of ``bench/webhook_ingest.py``'s ``ingest_ratio=``.

A bare Flask app served as the platform's web is (``gunicorn -c gunicorn.conf.py
bench.bare_receiver:app``): ``POST /polar/webhooks/<token>`` verifies the Standard Webhooks
signature with the secret in ``BENCH_WEBHOOK_SECRET`` (Polar's scheme: the HMAC key is the whole
``whsec_…`` secret's bytes, as the platform's receiver checks first) and answers 204, or 403. No
database, no Redis, no logging or metrics of its own, no request id: what is left is gunicorn,
Flask's routing and the signature.
"""

from __future__ import annotations

import base64
import os

from flask import Flask, request
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

SECRET_ENV = "BENCH_WEBHOOK_SECRET"

app = Flask(__name__)
_webhook = Webhook(base64.b64encode(os.environ[SECRET_ENV].encode()).decode())


@app.post("/polar/webhooks/<path_token>")
def deliver(path_token: str) -> tuple[str, int]:
    try:
        _webhook.verify(request.get_data(), dict(request.headers), json_parse=False)
    except WebhookVerificationError:
        return "", 403
    return "", 204
