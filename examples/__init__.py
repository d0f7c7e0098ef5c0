"""Example programs built on Connect Polar's tenant API. Each is a program of its own: it talks to the
platform over HTTP with an API key and imports nothing of the platform."""
