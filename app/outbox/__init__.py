"""The outbox: NAS operations queued in the store with the change that needs them, pushed
to NAS until acknowledged."""

from app.outbox.pusher import OutboxPusher

__all__ = ["OutboxPusher"]
