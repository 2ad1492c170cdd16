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


def test_run_measured_gives_the_exit_code_and_the_childs_page_faults(tmp_path):
    import os

    log = tmp_path / "child.log"
    touch = "b = bytearray(64 * 2**20); print('done'); raise SystemExit(3)"  # 64 MiB zero-filled: 16,384 pages
    with log.open("w") as f:
        code, seconds, usage = machine.run_measured([sys.executable, "-c", touch], f, env=dict(os.environ))
    assert code == 3 and seconds > 0 and log.read_text() == "done\n"
    assert usage.ru_minflt >= 16_384 and usage.ru_maxrss >= 64 * 1024  # KiB
