"""pyx_gru._cpuid, the benchmark's --hide-avx512: CPUID made to fault and
answered without the AVX-512 feature bits, for every library and thread of
the process, while a fault that is not a CPUID still ends the process.

Hiding is for the whole process and cannot be undone, so every test that
hides runs in a child process. A machine without CPUID faulting (a CPU,
kernel or hypervisor that lacks it, or not x86-64 Linux) checks the error
instead."""
import json
import platform
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pyx_gru import _cpuid

X86_LINUX = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
# Leaf 7's AVX-512 and AMX bits (_cpuid.pyx): subleaf 0 EBX, ECX, EDX; subleaf 1 EAX, EDX.
MASK_7_0 = (0, 0xDC230000, 0x00005842, 0x03C0010C)
MASK_7_1 = (1 << 5, 0, 0, 1 << 19)
AVX512F = 1 << 16  # leaf 7, subleaf 0, EBX


def run_child(code, *flags):
    """Run ``code`` in a new interpreter; the completed process."""
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True,
                          text=True, timeout=300)


def can_hide():
    """Whether this machine can hide AVX-512 (tried in a child process)."""
    proc = run_child("from pyx_gru import _cpuid; _cpuid.hide_avx512()")
    return proc.returncode == 0


HIDES = X86_LINUX and can_hide()
needs_faulting = pytest.mark.skipif(not HIDES, reason="no CPUID faulting on this machine")


@pytest.mark.skipif(not X86_LINUX, reason="CPUID is an x86-64 instruction")
def test_cpuid_reads_this_cpu():
    a, b, c, d = _cpuid.cpuid(0)
    vendor = b.to_bytes(4, "little") + d.to_bytes(4, "little") + c.to_bytes(4, "little")
    assert vendor in (b"GenuineIntel", b"AuthenticAMD", b"HygonGenuine", b"  Shanghai  ",
                      b"CentaurHauls")
    assert a >= 1
    flags = Path("/proc/cpuinfo").read_text().split("\nflags", 1)[1].split("\n", 1)[0].split()
    assert bool(_cpuid.cpuid(7)[1] & AVX512F) == ("avx512f" in flags)
    assert not _cpuid.hidden()  # nothing in the test process hides it


@pytest.mark.skipif(X86_LINUX, reason="x86-64 Linux has CPUID")
def test_elsewhere_it_says_why():
    with pytest.raises(OSError, match="x86-64"):
        _cpuid.hide_avx512()
    with pytest.raises(OSError, match="x86-64"):
        _cpuid.cpuid(0)


@pytest.mark.skipif(not X86_LINUX or HIDES, reason="this machine can hide AVX-512")
def test_without_faulting_it_says_why():
    proc = run_child("from pyx_gru import _cpuid; _cpuid.hide_avx512()")
    assert proc.returncode != 0
    assert "CPUID faulting" in proc.stderr and "cpuid_fault" in proc.stderr


HIDE_AND_READ = r"""
import json, threading
from pyx_gru import _cpuid
leaves = [(0, 0), (1, 0), (7, 0), (7, 1), (0x80000001, 0)]
before = {f"{l},{s}": _cpuid.cpuid(l, s) for l, s in leaves}
_cpuid.hide_avx512()
_cpuid.hide_avx512()  # a second call changes nothing
after = {f"{l},{s}": _cpuid.cpuid(l, s) for l, s in leaves}
seen = []
t = threading.Thread(target=lambda: seen.append(_cpuid.cpuid(7, 0)))
t.start()
t.join()
print(json.dumps({"before": before, "after": after, "thread": seen[0],
                  "traps": _cpuid.traps(), "hidden": _cpuid.hidden()}))
"""


@needs_faulting
def test_hidden_in_this_thread_and_in_threads_started_later():
    proc = run_child(HIDE_AND_READ)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    before, after = out["before"], out["after"]
    assert out["hidden"]
    # every AVX-512 and AMX bit cleared, every other bit as the CPU has it
    for key, mask in (("7,0", MASK_7_0), ("7,1", MASK_7_1)):
        assert after[key] == [v & ~m for v, m in zip(before[key], mask, strict=True)], key
    for key in ("0,0", "1,0", f"{0x80000001},0"):
        assert after[key] == before[key], key
    assert not after["7,0"][1] & AVX512F
    assert out["thread"] == after["7,0"]
    assert out["traps"] == len(after) + 1  # each read after hiding went through the handler


@needs_faulting
@pytest.mark.parametrize("flags", [(), ("-X", "faulthandler")], ids=["plain", "faulthandler"])
def test_a_fault_that_is_not_cpuid_still_ends_the_process(flags):
    """A real segmentation fault goes to the handler that was there before
    (Python's faulthandler, which prints a traceback, or the default) and the
    process ends on SIGSEGV: the handler never resumes a bad access."""
    proc = run_child("import ctypes; from pyx_gru import _cpuid; _cpuid.hide_avx512(); "
                     "print('hidden', flush=True); ctypes.string_at(0)", *flags)
    assert proc.stdout == "hidden\n"
    assert proc.returncode == -signal.SIGSEGV
    assert ("Segmentation fault" in proc.stderr) == bool(flags)


@needs_faulting
def test_a_library_loaded_later_takes_its_avx2_path():
    """PyTorch reads the CPU when it is imported: after hiding, it reports
    AVX2 where it would report AVX512 (the same run's own reading)."""
    pytest.importorskip("torch", reason="torch (an optional peer, in the 'test' extra) "
                                        "is not installed")
    code = ("from pyx_gru import _cpuid; {hide}import torch; "
            "print(torch.backends.cpu.get_cpu_capability())")
    plain = run_child(code.format(hide=""))
    hidden = run_child(code.format(hide="_cpuid.hide_avx512(); "))
    assert plain.returncode == 0 and hidden.returncode == 0, plain.stderr + hidden.stderr
    assert hidden.stdout.strip() in ("AVX2", "DEFAULT")
    if plain.stdout.strip().startswith("AVX512"):
        assert hidden.stdout.strip() == "AVX2"
