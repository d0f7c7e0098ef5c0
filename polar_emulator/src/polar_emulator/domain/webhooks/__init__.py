"""Webhook events and their signed delivery, as Polar does them."""
