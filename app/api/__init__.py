"""The tenant API, ``/api/v1``: JSON for a tenant's own deployment, authenticated by an API key
(``Authorization: Bearer cp_…``), never by cookies. Described by ``openapi.DOCUMENT``, served at
``/api/v1/openapi.json``."""
