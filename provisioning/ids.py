"""Primary keys: UUID4 strings, portable across PostgreSQL and SQLite and safe in job arguments."""

import uuid


def new_id() -> str:
    return str(uuid.uuid4())
