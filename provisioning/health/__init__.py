"""Connection health: is a connection's grant alive, with the scopes we need, and is our webhook
endpoint at Polar as it should be."""
