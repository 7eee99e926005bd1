"""Exit 0 when the PostgreSQL server of a database URL accepts TCP connections."""

import socket
import sys
from urllib.parse import urlsplit

if __name__ == "__main__":
    parts = urlsplit(sys.argv[1])
    try:
        socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 5432), timeout=2
        ).close()
    except OSError:
        sys.exit(1)
