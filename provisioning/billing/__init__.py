"""Each connection's billing state, built from Polar's webhook events: customers, subscriptions,
orders, benefit grants and each customer's state (``billing.processing`` says how)."""
