"""Load generation with `wrk`: a Lua script posting prepared fire deliveries (body + token),
one line each, spread over wrk's threads, counting the answers by status."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Each thread takes every n-th line (its own share), so no two threads send the same line.
# `wrapped` counts threads that ran out of lines and started over (then lines repeat).
_LUA = r"""
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  lines = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then
      local tab = line:find("\t", 1, true)
      table.insert(lines, {line:sub(1, tab - 1), line:sub(tab + 1)})
    end
    i = i + 1
  end
  pos = 0
  statuses = {}
  wrapped = 0
end

function request()
  pos = pos + 1
  if pos > #lines then pos = 1; wrapped = 1 end
  local item = lines[pos]
  return wrk.format("POST", "/api/cron/fire", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. item[2],
  }, item[1])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts, wraps = {}, 0
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for k, v in pairs(s) do counts[tostring(k)] = (counts[tostring(k)] or 0) + v end
    wraps = wraps + thread:get("wrapped")
  end
  local parts = {}
  for k, v in pairs(counts) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local pcts = {}
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do
    table.insert(pcts, string.format('"%s":%d', tostring(p), latency:percentile(p)))
  end
  io.write(string.format(
    'WRK_RESULT {"duration_us":%d,"requests":%d,"errors":%d,"wrapped":%d,' ..
    '"statuses":{%s},"latency_us":{%s}}\n',
    summary.duration, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    wraps, table.concat(parts, ","), table.concat(pcts, ",")))
end
"""


@dataclass(frozen=True)
class WrkResult:
    seconds: float
    requests: int
    errors: int
    wrapped: bool
    statuses: dict[str, int]
    latency_us: dict[str, int]

    def per_second(self, status: str | None = None) -> float:
        """Answers per second, all of them or those with `status`."""
        count = self.requests if status is None else self.statuses.get(status, 0)
        return count / self.seconds


def write_script(folder: Path) -> Path:
    path = folder / "fires.lua"
    path.write_text(_LUA)
    return path


def run_wrk(
    script: Path,
    base_url: str,
    lines: Path,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
) -> WrkResult:
    """`wrk` against `base_url` for `seconds`, posting the deliveries of `lines`."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        base_url,
        "--",
        str(lines),
        str(threads),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    out = done.stdout
    marker = next(line for line in out.splitlines() if line.startswith("WRK_RESULT "))
    data = json.loads(marker.removeprefix("WRK_RESULT "))
    return WrkResult(
        seconds=data["duration_us"] / 1e6,
        requests=data["requests"],
        errors=data["errors"],
        wrapped=data["wrapped"] > 0,
        statuses=data["statuses"],
        latency_us=data["latency_us"],
    )


def run_wrk_plain(
    url: str, *, seconds: float, connections: int, script: Path | None = None
) -> float:
    """Requests per second of `wrk` GETting `url` (or sending what `script` makes)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url]
    if script is not None:
        argv[4:4] = ["-s", str(script)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("Requests/sec:"))
    return float(line.split()[1])
