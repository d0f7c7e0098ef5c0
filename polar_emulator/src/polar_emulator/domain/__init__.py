"""The emulator's domain: its state (the :class:`~polar_emulator.domain.store.Store`) and the
operations the routers share, with no HTTP in it.

Layers, each importing only the ones below it:

1. ``app``, ``server``, ``__main__``, ``pytest_plugin``: assembly and running.
2. The routers: ``control``, ``oauth.routes``, ``resources.*``, ``webhooks.routes``.
3. What routers share: ``auth``, ``pagination``, ``middleware``, ``resources.common`` and the
   OAuth server (``oauth.*``).
4. ``domain``: the store, the resources' records and operations, webhook events and delivery.
5. ``config``, ``clock``, ``tokens``, ``errors`` (and ``spec``, Polar's OpenAPI document).

Inside ``domain`` the order is: ``oauth`` and ``organizations``, then ``store``, then the
webhook machinery, then the catalog (``meters``, ``benefits``, ``products``), then billing
(``customers``, ``grants``, ``events``, ``subscriptions``, ``customer_state``, ``revocations``,
``checkouts``, ``orders``, ``purchases``).
"""
