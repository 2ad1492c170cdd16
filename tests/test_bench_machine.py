"""benchmarks/machine.py: the CPU line every result file carries names the vector flags that set its kernels."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import machine  # noqa: E402


def _cpuinfo(tmp_path, text, monkeypatch):
    f = tmp_path / "cpuinfo"
    f.write_text(text)
    real = machine.Path
    monkeypatch.setattr(machine, "Path", lambda p: f if p == "/proc/cpuinfo" else real(p))


def test_the_cpu_line_names_the_vector_flags_in_a_fixed_order(tmp_path, monkeypatch):
    _cpuinfo(tmp_path, "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512_vnni sse avx2 avx512f avx512_bf16\n",
             monkeypatch)
    assert machine.cpu_model() == "AMD EPYC [avx2 avx512f avx512_bf16 avx512_vnni]"
    _cpuinfo(tmp_path, "model name\t: AMD EPYC\nflags\t\t: fpu sse avx2 fma\n", monkeypatch)
    assert machine.cpu_model() == "AMD EPYC [avx2]"
    _cpuinfo(tmp_path, "model name\t: Old CPU\nflags\t\t: fpu sse\n", monkeypatch)
    assert machine.cpu_model() == "Old CPU [no AVX2]"


def test_without_a_model_name_it_falls_back_to_platform(tmp_path, monkeypatch):
    _cpuinfo(tmp_path, "processor\t: 0\n", monkeypatch)
    monkeypatch.setattr(machine.platform, "processor", lambda: "armv8")
    assert machine.cpu_model() == "armv8"
