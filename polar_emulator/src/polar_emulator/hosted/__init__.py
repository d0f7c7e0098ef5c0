"""Polar's hosted pages (polar.sh, not the API): the checkout page at a checkout's ``url``."""
