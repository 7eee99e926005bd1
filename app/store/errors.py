"""What the store raises past itself."""


class StoreUnavailable(Exception):
    """The database cannot be reached or is locked; the operation changed nothing."""


class DuplicateFire(Exception):
    """A fire with this dedup key was already admitted."""


class StoreDataError(Exception):
    """The database refused a value as data (PostgreSQL SQLSTATE class 22, a SQLite integer
    overflow, text that cannot be encoded): the request was wrong, the database is fine."""
