"""The bare baseline: FastAPI + uvicorn (the agent's versions), one worker, one POST route at
the fire path that parses the JSON body and answers 202. Nothing else.

Run: `python bench/baseline_app.py PORT`.
"""

from __future__ import annotations

import json
import sys

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/api/cron/fire", status_code=202)
async def fire(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    return JSONResponse({"status": "accepted", "job_id": body.get("job_id")}, status_code=202)


def main() -> None:
    import uvicorn

    # The same uvicorn defaults `chronos serve` runs with (auto loop and HTTP parser).
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None)


if __name__ == "__main__":
    main()
