"""The RAPL meter: CPU package (+ DRAM) energy from the Linux powercap counters.

Reads ``energy_uj`` of the RAPL zones under ``/sys/class/powercap`` (or ``$FRUGAL_RAPL_ROOT``):

* top-level zones ``intel-rapl:N`` (also ``amd-rapl:N``) whose ``name`` starts with ``package``
  (``package-0``, ``package-0-die-1``; AMD Zen exposes ``package-N`` through the same driver)
  are summed into the ``cpu`` component;
* their subzones ``intel-rapl:N:M`` named ``dram`` are summed into the ``dram`` component;
* ``psys`` (the whole platform), ``core`` and ``uncore`` overlap the package and are never
  added; ``intel-rapl-mmio:N`` mirrors the package through MMIO and is ignored.

Counters wrap at ``max_energy_range_uj``. Each read adds the wrapped delta to a running total,
and while a window is open a guard thread reads every ``poll_interval_s`` so that a window longer
than one wrap period (minutes at full load) still adds up.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.errors import FrugalError
from evaluator.meters.base import Measurement, Meter, counter_measurement

DEFAULT_ROOT = "/sys/class/powercap"
ENV_ROOT = "FRUGAL_RAPL_ROOT"
#: Seconds between guard reads while a window is open; far below the shortest wrap period.
DEFAULT_POLL_INTERVAL_S = 30.0

_TOP_ZONE = re.compile(r"^(intel-rapl|amd-rapl):\d+$")

PERMISSION_HELP = (
    "Since Linux 5.10 (CVE-2020-8694) energy_uj is readable by root only. Grant read access with "
    "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj` (until reboot), or permanently with a udev rule "
    "such as `ACTION==\"add\", SUBSYSTEM==\"powercap\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"` "
    "in /etc/udev/rules.d/99-rapl.rules, or run as root. Otherwise use `--meter estimate` "
    "(a labelled estimate)."
)


class RaplUnavailable(FrugalError):
    """RAPL cannot be used here; ``reason`` is the short why, the message adds the remedy."""

    def __init__(self, reason: str, remedy: str = "use --meter estimate") -> None:
        """Keep the short reason; the message adds the remedy."""
        self.reason = reason
        super().__init__(f"RAPL: {reason}. {remedy}")


@dataclass(frozen=True)
class RaplZone:
    """One counted RAPL domain."""

    label: str  # "package-0", "package-0/dram"
    component: str  # "cpu" or "dram"
    energy_path: Path
    max_energy_range_uj: int


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Pick the powercap root: ``root``, else ``$FRUGAL_RAPL_ROOT``, else /sys/class/powercap."""
    return Path(root or os.environ.get(ENV_ROOT) or DEFAULT_ROOT)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


def read_energy_uj(path: Path) -> int:
    """Read one ``energy_uj`` counter; permission denied becomes an error saying how to fix it."""
    try:
        return int(_read_text(path))
    except PermissionError as exc:
        raise RaplUnavailable(f"permission denied reading {path}", PERMISSION_HELP) from exc
    except (OSError, ValueError) as exc:
        raise RaplUnavailable(f"cannot read {path}: {exc}") from exc


def discover_zones(root: Path) -> tuple[list[RaplZone], list[str]]:
    """Find the package and DRAM zones under ``root``; also return the labels of skipped zones."""
    if not root.is_dir():
        raise RaplUnavailable(f"{root} absent (no powercap interface)")
    zones: list[RaplZone] = []
    skipped: list[str] = []
    for top in sorted(p for p in root.iterdir() if _TOP_ZONE.match(p.name)):
        name = _zone_name(top)
        if name.startswith("package"):
            zones.append(_zone(top, name, "cpu"))
            for sub in sorted(top.glob(f"{top.name}:*")):
                sub_name = _zone_name(sub)
                if sub_name == "dram":
                    zones.append(_zone(sub, f"{name}/dram", "dram"))
                else:
                    skipped.append(f"{name}/{sub_name}")
        elif name == "dram":  # some platforms expose DRAM as a top-level zone
            zones.append(_zone(top, f"dram-{top.name.rsplit(':', 1)[1]}", "dram"))
        else:
            skipped.append(name)  # psys and anything unknown: never summed with package
    if not any(z.component == "cpu" for z in zones):
        raise RaplUnavailable(f"no package zones (intel-rapl:N named package-*) under {root}")
    return zones, skipped


def _zone_name(path: Path) -> str:
    try:
        return _read_text(path / "name")
    except OSError:
        return path.name


def _zone(path: Path, label: str, component: str) -> RaplZone:
    try:
        max_uj = int(_read_text(path / "max_energy_range_uj"))
    except (OSError, ValueError) as exc:
        raise RaplUnavailable(f"cannot read {path / 'max_energy_range_uj'}: {exc}") from exc
    return RaplZone(label, component, path / "energy_uj", max_uj)


def wrapped_delta_uj(start_uj: int, end_uj: int, max_energy_range_uj: int) -> int:
    """Energy between two counter reads, allowing for one wrap at ``max_energy_range_uj``."""
    if end_uj >= start_uj:
        return end_uj - start_uj
    return end_uj + max_energy_range_uj - start_uj


class RaplMeter(Meter):
    """Package + DRAM energy from RAPL counters; a measurement, not an estimate."""

    name = "rapl"
    is_counter = True
    min_window_s = 1.0

    def __init__(self, root: str | os.PathLike[str] | None = None,
                 poll_interval_s: float = DEFAULT_POLL_INTERVAL_S) -> None:
        """Discover the zones under the root and read them once (errors surface here)."""
        super().__init__()
        self.root = resolve_root(root)
        self.zones, self.skipped = discover_zones(self.root)
        self.poll_interval_s = poll_interval_s
        self._lock = threading.Lock()
        self._last_uj = {z.label: read_energy_uj(z.energy_path) for z in self.zones}
        self._total_uj = dict.fromkeys(self._last_uj, 0)
        self._wraps = 0
        self._guard: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = 0  # windows open (counted here: AutoMeter calls _begin/_end directly)

    @classmethod
    def from_options(cls, options: Any) -> RaplMeter:
        """Build from MeterOptions (``rapl_root``; None falls back to $FRUGAL_RAPL_ROOT)."""
        return cls(getattr(options, "rapl_root", None))

    @classmethod
    def available(cls, root: str | os.PathLike[str] | None = None) -> tuple[bool, str]:
        """Whether RAPL can be read under ``root``, and why not when it cannot."""
        try:
            zones, _ = discover_zones(resolve_root(root))
            for zone in zones:
                read_energy_uj(zone.energy_path)
        except RaplUnavailable as exc:
            return False, exc.reason
        return True, "ok"

    def _poll(self) -> tuple[dict[str, int], int]:
        """Read every zone, add the wrapped deltas to the running totals; return a snapshot."""
        with self._lock:
            for zone in self.zones:
                now = read_energy_uj(zone.energy_path)
                last = self._last_uj[zone.label]
                if now < last:
                    self._wraps += 1
                self._total_uj[zone.label] += wrapped_delta_uj(last, now, zone.max_energy_range_uj)
                self._last_uj[zone.label] = now
            return dict(self._total_uj), self._wraps

    def _guard_loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self._poll()
            except RaplUnavailable:
                return  # the next begin/end read raises the same error where it can be seen

    def _begin(self) -> Any:
        state = self._poll()
        self._active += 1
        if self._guard is None or not self._guard.is_alive():
            self._stop.clear()
            self._guard = threading.Thread(target=self._guard_loop, name="rapl-wrap-guard",
                                           daemon=True)
            self._guard.start()
        return state

    def _end(self, window: str, state: Any, duration_s: float, cpu_time_s: float) -> Measurement:
        (start_uj, start_wraps), (end_uj, end_wraps) = state, self._poll()
        self._active -= 1
        if self._active <= 0:
            self.close()
        zones_j = {label: (end_uj[label] - start_uj[label]) / 1e6 for label in end_uj}
        components_j: dict[str, float] = {}
        for zone in self.zones:
            components_j[zone.component] = (components_j.get(zone.component, 0.0)
                                            + zones_j[zone.label])
        return counter_measurement(
            window, "rapl", components_j, duration_s, cpu_time_s, self.min_window_s,
            {"zones_j": zones_j, "zones": [z.label for z in self.zones], "skipped_zones": list(self.skipped),
             "wraps": end_wraps - start_wraps})

    def context(self) -> dict[str, Any]:
        """Zones read and skipped, and the powercap root."""
        return {
            "meter": self.name,
            "is_estimate": False,
            "root": str(self.root),
            "zones": {z.label: str(z.energy_path.parent.name) for z in self.zones},
            "skipped_zones": list(self.skipped),
            "scope": "CPU packages (+ DRAM where exposed), whole machine, not only this process",
        }

    def close(self) -> None:
        """Stop the wrap guard thread."""
        self._stop.set()
        guard, self._guard = self._guard, None
        if guard is not None and guard is not threading.current_thread():
            guard.join(timeout=1.0)
