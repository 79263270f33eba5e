"""CPU time in a benchmark's measured window, so that a run on a busy machine shows as one
instead of passing for the service's speed."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CpuMeter:
    """CPU seconds used by the server, by this client and by everything else on the machine
    (Linux /proc), so a run on a busy machine shows it: "others" should be near 0."""

    server_pids: tuple[int, ...]  # (): this process is the server (in-process stages)
    _start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def _now(self) -> tuple[float, float, float, float]:
        try:
            tick = os.sysconf("SC_CLK_TCK")
            server = 0.0
            for pid in self.server_pids:  # several serving processes: their sum
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                server += (int(fields[11]) + int(fields[12])) / tick
            total = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            busy = (sum(total[:8]) - total[3] - total[4]) / tick  # all but idle and iowait
        except (OSError, ValueError, IndexError):
            return (float("nan"),) * 4
        own = os.times()
        return time.perf_counter(), server, own.user + own.system, busy

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> tuple[float, float, float, float]:
        """(wall, server, client, machine) seconds since start()."""
        end = self._now()
        wall, server, client, busy = (b - a for a, b in zip(self._start, end, strict=True))
        return wall, server, client, busy


def cpu_figures(use: tuple[float, float, float, float], sightings: int) -> dict[str, float]:
    wall, server, client, busy = use
    return {"server_cpu_ms_per_sighting": 1000 * server / max(sightings, 1),
            "server_cores": server / wall, "client_cores": client / wall,
            "others_cores": max(0.0, busy - server - client) / wall}
