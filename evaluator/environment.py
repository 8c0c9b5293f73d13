"""The context stored with every run: hardware (CPU model, instruction sets), software, threads, backends.

Instruction sets are read at run time from ``/proc/cpuinfo`` (never assumed): whether bf16, fp16 or int8
variants have a fast kernel on this CPU depends on them (AVX512_BF16 / AMX for bf16, VNNI for int8).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

from evaluator.meters.estimate import cpu_model

if TYPE_CHECKING:
    from evaluator.backends.base import Backend

#: /proc/cpuinfo flag -> the name we record (the ones that decide which kernels are fast).
CPU_FLAGS = {"avx2": "avx2", "fma": "fma", "f16c": "f16c", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni",
             "avx_vnni": "avx_vnni", "avx512_bf16": "avx512_bf16", "amx_tile": "amx_tile", "amx_bf16": "amx_bf16",
             "amx_int8": "amx_int8", "avx512_fp16": "avx512_fp16", "amx_fp16": "amx_fp16"}


def present_flags() -> frozenset[str]:
    """The names of :data:`CPU_FLAGS` this machine has (what variants' ``cpu_needs`` are checked against)."""
    return frozenset(name for name, have in cpu_flags().items() if have)


def parse_cpu_flags(cpuinfo: str) -> dict[str, bool]:
    r"""The instruction sets in ``CPU_FLAGS`` that the first ``flags`` line of a /proc/cpuinfo text lists.

    >>> parse_cpu_flags("flags\t\t: fpu avx2 fma f16c")["avx2"], parse_cpu_flags("flags : avx2")["amx_tile"]
    (True, False)
    """
    for line in cpuinfo.splitlines():
        if line.split(":", 1)[0].strip() == "flags":
            have = set(line.split(":", 1)[1].split())
            return {name: flag in have for flag, name in CPU_FLAGS.items()}
    return {name: False for name in CPU_FLAGS.values()}


@cache
def cpu_flags() -> dict[str, bool]:
    """The instruction sets of this machine (read once per process); all False where /proc/cpuinfo is absent."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return parse_cpu_flags(fh.read())
    except OSError:
        return parse_cpu_flags("")


def fallback_fields(variant: Any, device: str) -> dict[str, Any]:
    """``fallback_kernel`` / ``fallback_reason`` of a cell of ``variant`` (a Composite) on ``device`` here."""
    why = variant.fallback(device, present_flags())
    return {"fallback_kernel": why is not None, "fallback_reason": why}


def environment(threads: int, device: str, backends: Iterable[Backend] = ()) -> dict[str, Any]:
    """Hardware and software context stored with every run (each backend adds its own versions)."""
    from evaluator import __version__
    from evaluator.store import now_iso

    env: dict[str, Any] = {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "cpu_flags": cpu_flags(),
                           "gpu": None, "device": device, "threads": threads, "platform": platform.platform(),
                           "python": platform.python_version(), "frugal": __version__, "date": now_iso(),
                           "backends": {}}
    for b in backends:
        own = b.environment()
        env["backends"][b.name] = {"version": b.version(), **own}
        env.update({k: v for k, v in own.items() if k not in env or env[k] is None})
    return env
