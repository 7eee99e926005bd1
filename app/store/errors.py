"""What the store raises past itself."""


class StoreUnavailable(Exception):
    """The database cannot be reached or is locked; the operation changed nothing."""


class DuplicateFire(Exception):
    """A fire with this dedup key was already admitted."""
