"""The domain of Connect Polar: integrations, the token vault, the plan catalog and provisioning.

Never imports Flask: the web layer (``app/``) sits on top of this package, and RQ workers run it
without any Flask application context.
"""
