"""The agent's state at a glance (`GET /api/status`) and its readiness (`/readyz`)."""
