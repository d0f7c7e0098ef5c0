"""The hosted checkout page at a checkout's ``url`` (``/checkout/{client_secret}``).

``GET`` shows the product, its price, an email field (unless the checkout is linked to a
customer) and a *Pay* button, a form ``POST`` to the same URL. Paying runs Polar's purchase flow
(``domain/checkout_payment.py``) and redirects (303) to the checkout's ``success_url``, with
``{CHECKOUT_ID}`` filled in; without one, to Polar's confirmation page
``/checkout/{client_secret}/confirmation``. An expired checkout answers 410, a paid one shows
that it is complete, an unknown one 404. There is no card form: paying always succeeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from polar_emulator.auth import get_store
from polar_emulator.domain.checkout_payment import pay_checkout
from polar_emulator.domain.checkouts import by_client_secret, is_expired, serialize_checkout
from polar_emulator.domain.store import Store
from polar_emulator.errors import ApiError

router = APIRouter(include_in_schema=False)

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
_EVERY = {"day": "day", "week": "week", "month": "month", "year": "year"}


def money(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency.upper()}"


def price_label(product: dict[str, Any], amount: int, currency: str) -> str:
    text = money(amount, currency)
    interval = product.get("recurring_interval")
    if not interval:
        return text
    count = product.get("recurring_interval_count") or 1
    unit = _EVERY.get(interval, interval)
    return f"{text} per {unit}" if count == 1 else f"{text} every {count} {unit}s"


def _product_view(product: dict[str, Any], currency: str) -> dict[str, Any]:
    prices = [p for p in product.get("prices", []) if not p.get("is_archived")]
    amount = (prices[0].get("price_amount") or 0) if prices else 0
    return {
        "id": product["id"],
        "name": product["name"],
        "description": product.get("description"),
        "price": price_label(product, amount, currency),
        "amount": money(amount, currency),
    }


def _page(
    title: str,
    status: int = 200,
    *,
    error: str | None = None,
    message: str | None = None,
    continue_url: str | None = None,
    **form: Any,
) -> HTMLResponse:
    html = _env.get_template("checkout.html").render(
        title=title, error=error, message=message, continue_url=continue_url, form=bool(form), **form
    )
    return HTMLResponse(html, status_code=status)


def _form(
    store: Store,
    checkout: dict[str, Any],
    *,
    email: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    products = [store.collections["products"].get(p["id"]) or p for p in checkout["products"]]
    views = [_product_view(p, checkout["currency"]) for p in products]
    selected = next(v for v in views if v["id"] == checkout["product_id"])
    organization = store.organizations.get(checkout["organization_id"], {}).get("name", "")
    linked = checkout["customer_id"] is not None
    return _page(
        "Checkout",
        status,
        error=error,
        organization=organization,
        action=f"/checkout/{checkout['client_secret']}",
        products=views,
        selected=selected,
        email=email if email is not None else checkout["customer_email"],
        email_fixed=linked and bool(checkout["customer_email"]),
    )


def _closed(store: Store, checkout: dict[str, Any] | None, *, paying: bool = False) -> HTMLResponse | None:
    """The page for a checkout that cannot be paid, or None when it is open. Paying a checkout
    that is no longer open is Polar's 403 ``NotOpenCheckout``."""
    if checkout is None:
        return _page("Checkout not found", 404, message="This checkout does not exist.")
    if is_expired(store, checkout):
        return _page("Checkout expired", 410, message="This checkout session has expired.")
    if checkout["status"] == "open":
        return None
    data = serialize_checkout(store, checkout)
    paid = data["status"] == "succeeded"
    return _page(
        "Checkout complete" if paid else "Checkout closed",
        403 if paying else 200,
        error="This checkout is not open." if paying else None,
        message="This checkout has been paid." if paid else "This checkout is closed.",
        continue_url=data["success_url"] if paid else None,
    )


@router.get("/checkout/{client_secret}")
async def checkout_page(request: Request, client_secret: str) -> Response:
    store = get_store(request)
    checkout = by_client_secret(store, client_secret)
    if checkout is None or checkout["status"] != "open" or is_expired(store, checkout):
        return _closed(store, checkout) or _page("Checkout not found", 404)
    return _form(store, checkout)


@router.post("/checkout/{client_secret}")
async def pay(request: Request, client_secret: str) -> Response:
    form = await request.form()
    store = get_store(request)
    checkout = by_client_secret(store, client_secret)
    if checkout is None or checkout["status"] != "open" or is_expired(store, checkout):
        return _closed(store, checkout, paying=True) or _page("Checkout not found", 404)
    email = form.get("customer_email")
    product_id = form.get("product_id")
    email = email if isinstance(email, str) else None
    product_id = product_id if isinstance(product_id, str) else None
    try:
        pay_checkout(store, checkout, customer_email=email, product_id=product_id)
    except ApiError as exc:
        detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
        if isinstance(detail, list):
            detail = "; ".join(str(d.get("msg")) for d in detail)
        message = str(detail or "The payment failed.")
        return _form(store, checkout, email=email, error=message, status=exc.status)
    return RedirectResponse(serialize_checkout(store, checkout)["success_url"], status_code=303)


@router.get("/checkout/{client_secret}/confirmation")
async def confirmation(request: Request, client_secret: str) -> Response:
    """Polar's own confirmation page, the default ``success_url``."""
    store = get_store(request)
    checkout = by_client_secret(store, client_secret)
    if checkout is None:
        return _page("Checkout not found", 404, message="This checkout does not exist.")
    if checkout["status"] == "succeeded":
        return _page("Thank you", message="Your payment was received.")
    return _page("Payment pending", message="This checkout has not been paid yet.")
