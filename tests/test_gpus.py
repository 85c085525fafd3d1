"""engine.gpus: no GPU here, so NVML must be absent without raising; the NVML path itself is
driven through a stub `pynvml` module; the pure CUDA_VISIBLE_DEVICES rules and the
GRIDRUN_FAKE_GPUS seam are checked exactly."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from gridrun.engine import gpus
from gridrun.engine.errors import GridrunError
from gridrun.engine.gpus import Gpu, describe, list_gpus, parse_visible_devices

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30


def _nvml_present() -> bool:
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:
        return False
    return True


no_gpu = pytest.mark.skipif(_nvml_present(), reason="this machine has a working NVML")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GRIDRUN_FAKE_GPUS", "CUDA_VISIBLE_DEVICES")}
    return {**env, **extra}


def _py(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_clean_env(**env),
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def fresh_nvml(monkeypatch):
    """Forget this process's NVML state, so that the next query initialises again."""
    monkeypatch.setattr(gpus, "_tried", False)
    monkeypatch.setattr(gpus, "_nvml", None)
    monkeypatch.setattr(gpus, "_reason", "")
    monkeypatch.delenv("GRIDRUN_FAKE_GPUS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


# --- this machine: no NVIDIA driver ---------------------------------------------------------

@no_gpu
def test_no_driver_in_process(fresh_nvml):
    assert gpus.list_gpus({}) == []
    assert gpus.nvml_status() == "NVML library not found (no NVIDIA driver)"
    assert gpus.process_memory() == {}
    assert gpus.list_gpus({"CUDA_VISIBLE_DEVICES": "0"}) == []


@no_gpu
def test_no_driver_in_fresh_subprocess():
    r = _py("from engine import gpus\n"
            "print(gpus.list_gpus()); print(gpus.nvml_status()); print(gpus.process_memory())\n"
            "print(gpus.describe(gpus.list_gpus()))")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.splitlines() == ["[]", "NVML library not found (no NVIDIA driver)", "{}",
                                     "CPU only"]


def test_import_does_not_load_pynvml():
    r = _py("import sys, gridrun.engine.gpus\nprint('pynvml' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "False\n"


def test_fake_gpus_in_fresh_subprocess_do_not_touch_nvml():
    r = _py("import sys\nfrom engine import gpus\n"
            "print([(g.index, g.uuid) for g in gpus.list_gpus()]); print('pynvml' in sys.modules)",
            GRIDRUN_FAKE_GPUS="2x16", CUDA_VISIBLE_DEVICES="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[(1, 'GPU-fake-1')]", "False"]


# --- CUDA_VISIBLE_DEVICES --------------------------------------------------------------------

def _gpu(i: int, uuid: str) -> Gpu:
    return Gpu(index=i, uuid=uuid, name="G", memory_total=GIB, memory_used=0, utilization=0)


A = _gpu(0, "GPU-8f3a1111-0000-0000-0000-000000000000")
B = _gpu(1, "GPU-8f3b2222-0000-0000-0000-000000000000")
C = _gpu(2, "GPU-c0de3333-0000-0000-0000-000000000000")
ALL = [A, B, C]


@pytest.mark.parametrize("value, expected", [
    (None, [A, B, C]),
    ("0,1,2", [A, B, C]),
    ("2,0", [C, A]),
    (" 1 ", [B]),
    ("01", [B]),
    (C.uuid, [C]),
    (C.uuid.upper(), [C]),                  # UUIDs match case-insensitively
    ("GPU-c0de", [C]),
    ("GPU-8f3b,GPU-c", [B, C]),
    ("2,GPU-8f3a", [C, A]),                 # indices and UUIDs mixed
    ("", []),
    ("-1", []),
    ("none", []),
    ("NoDevFiles", []),
    ("1,-1,0", [B]),                        # the list ends at the first invalid entry
    ("0,7,1", [A]),                         # out of range
    ("3", []),
    ("2,GPU-8f,1", [C]),                    # ambiguous prefix (8f3a and 8f3b)
    ("0,GPU-ffff,1", [A]),                  # no such UUID
    ("GPU-", []),
    ("0,,1", [A]),                          # an empty entry is invalid too
    ("1,1,0", [B]),                         # a device named twice ends the list
    ("1,GPU-8f3b", [B]),
    ("MIG-8f3a1111-0000-0000-0000-000000000000", []),
    ("1²", []),                             # only ASCII digits are an index
    ("²", []),
    ("\u0661", []),                        # ARABIC-INDIC DIGIT ONE is no index
])
def test_parse_visible_devices(value, expected):
    assert parse_visible_devices(value, ALL) == expected


def test_parse_visible_devices_exact_uuid_beats_prefix():
    ten = [_gpu(i, f"GPU-fake-{i}") for i in range(11)]
    assert parse_visible_devices("GPU-fake-1", ten) == [ten[1]]
    assert parse_visible_devices("GPU-fake-10,3", ten) == [ten[10], ten[3]]


def test_parse_visible_devices_uses_nvml_index_not_position():
    # a list that is already restricted keeps physical indices: "0" names the NVML device 0
    assert parse_visible_devices("2,0", [B, C]) == [C]


# --- GRIDRUN_FAKE_GPUS -----------------------------------------------------------------------

def test_fake_count_times_size():
    assert list_gpus({"GRIDRUN_FAKE_GPUS": "2x16"}) == [
        Gpu(0, "GPU-fake-0", "Fake GPU", 16 * GIB, 0, 0),
        Gpu(1, "GPU-fake-1", "Fake GPU", 16 * GIB, 0, 0),
    ]


def test_fake_size_list():
    got = list_gpus({"GRIDRUN_FAKE_GPUS": "24, 80"})
    assert [(g.index, g.uuid, g.memory_total) for g in got] == [
        (0, "GPU-fake-0", 24 * GIB), (1, "GPU-fake-1", 80 * GIB)]
    assert [g.memory_total_gb for g in got] == [24.0, 80.0]
    assert list_gpus({"GRIDRUN_FAKE_GPUS": "1x0.5"})[0].memory_total == GIB // 2
    assert len(list_gpus({"GRIDRUN_FAKE_GPUS": "3X8"})) == 3


@pytest.mark.parametrize("visible, indices", [
    ("1", [1]), ("3,0", [3, 0]), ("GPU-fake-2", [2]), ("", []), ("-1", []), ("0,9,1", [0]),
])
def test_fake_restricted_by_visible_devices(visible, indices):
    env = {"GRIDRUN_FAKE_GPUS": "4x16", "CUDA_VISIBLE_DEVICES": visible}
    assert [g.index for g in list_gpus(env)] == indices


def test_fake_read_from_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("GRIDRUN_FAKE_GPUS", "3x8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,1")
    assert [g.uuid for g in list_gpus()] == ["GPU-fake-2", "GPU-fake-1"]


@pytest.mark.parametrize("value", [
    "abc", "2x", "x16", "0x16", "2x0", "2x-16", "24,,80", "24,0", "-8", "2x16x2", "16GB", " ",
    "1e3", "2*16",
])
def test_fake_malformed(value):
    with pytest.raises(GridrunError) as e:
        list_gpus({"GRIDRUN_FAKE_GPUS": value})
    assert str(e.value) == (f"GRIDRUN_FAKE_GPUS={value!r}: expected COUNTxGIB like '2x16' "
                            "or a comma list of GiB like '24,80'")
    assert "\n" not in str(e.value)


def test_fake_empty_means_unset(fresh_nvml, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert list_gpus({"GRIDRUN_FAKE_GPUS": ""}) == []
    assert gpus.nvml_status() == "nvidia-ml-py (pynvml) is not installed"


# --- describe --------------------------------------------------------------------------------

def test_describe():
    h100 = Gpu(0, "GPU-a", "NVIDIA H100 80GB HBM3", 85520809984, None, None)
    assert describe([]) == "CPU only"
    assert describe([h100, h100]) == "2× NVIDIA H100 80GB HBM3 (80 GB)"
    assert describe([h100]) == "1× NVIDIA H100 80GB HBM3 (80 GB)"
    assert describe(list_gpus({"GRIDRUN_FAKE_GPUS": "24,80,24,7.8"})) == (
        "2× Fake GPU (24 GB) + 1× Fake GPU (80 GB) + 1× Fake GPU (7.8 GB)")
    assert describe(list_gpus({"GRIDRUN_FAKE_GPUS": "1x8"})) == "1× Fake GPU (8 GB)"


# --- the NVML path, through a stub pynvml ----------------------------------------------------

class _NVMLError(Exception):
    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return {9: "Driver Not Loaded", 3: "Not Supported", 999: "Unknown Error"}[self.value]


def _stub(init_error: int | None = None, v3_missing: bool = False) -> types.ModuleType:
    m = types.ModuleType("pynvml")
    m.NVMLError = _NVMLError
    devices = [
        dict(uuid="GPU-aaaa", name="NVIDIA H100 80GB HBM3", total=85520809984, used=1 * GIB,
             util=37, compute=[(101, 2 * GIB), (102, None)], graphics=[(101, 2 * GIB)]),
        dict(uuid="GPU-bbbb", name="NVIDIA H100 80GB HBM3", total=85520809984, used=0,
             util=None, compute=[(101, 3 * GIB), (103, GIB)], graphics=[]),
        None,  # lost: nvmlDeviceGetHandleByIndex fails
    ]

    def init():
        if init_error is not None:
            raise _NVMLError(init_error)

    def util(h):
        if devices[h]["util"] is None:
            raise _NVMLError(3)
        return types.SimpleNamespace(gpu=devices[h]["util"], memory=0)

    def procs(kind):
        def get(h):
            return [types.SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in devices[h][kind]]
        return get

    def handle(i):
        if devices[i] is None:
            raise _NVMLError(999)
        return i

    def v3_gone(h):
        raise RuntimeError("NVMLLibraryMismatchError stand-in: use the _v2 function")

    m.nvmlInit = init
    m.nvmlSystemGetDriverVersion = lambda: "550.54"
    m.nvmlDeviceGetCount = lambda: len(devices)
    m.nvmlDeviceGetHandleByIndex = handle
    m.nvmlDeviceGetUUID = lambda h: devices[h]["uuid"]
    m.nvmlDeviceGetName = lambda h: devices[h]["name"]
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        total=devices[h]["total"], used=devices[h]["used"], free=0)
    m.nvmlDeviceGetUtilizationRates = util
    m.nvmlDeviceGetComputeRunningProcesses = v3_gone if v3_missing else procs("compute")
    m.nvmlDeviceGetComputeRunningProcesses_v2 = procs("compute")
    m.nvmlDeviceGetGraphicsRunningProcesses = v3_gone if v3_missing else procs("graphics")
    m.nvmlDeviceGetGraphicsRunningProcesses_v2 = procs("graphics")
    return m


def test_stub_nvml_devices(fresh_nvml, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _stub())
    assert list_gpus({}) == [
        Gpu(0, "GPU-aaaa", "NVIDIA H100 80GB HBM3", 85520809984, GIB, 37),
        Gpu(1, "GPU-bbbb", "NVIDIA H100 80GB HBM3", 85520809984, 0, None),
    ]
    assert [g.index for g in list_gpus({"CUDA_VISIBLE_DEVICES": "GPU-bb,0"})] == [1, 0]
    assert list_gpus({"CUDA_VISIBLE_DEVICES": "2,0"}) == []   # the lost device names nothing
    assert gpus.nvml_status() == "ok (driver 550.54, 3 devices)"
    assert describe(list_gpus({})) == "2× NVIDIA H100 80GB HBM3 (80 GB)"


def test_stub_status_one_device(fresh_nvml, monkeypatch):
    stub = _stub()
    stub.nvmlDeviceGetCount = lambda: 1
    monkeypatch.setitem(sys.modules, "pynvml", stub)
    assert gpus.nvml_status() == "ok (driver 550.54, 1 device)"
    assert [g.uuid for g in list_gpus({})] == ["GPU-aaaa"]


@pytest.mark.parametrize("v3_missing", [False, True])
def test_stub_process_memory(fresh_nvml, monkeypatch, v3_missing):
    monkeypatch.setitem(sys.modules, "pynvml", _stub(v3_missing=v3_missing))
    # 101 is C+G on device 0 (counted once) and compute on device 1; 102's figure is n/a
    assert gpus.process_memory() == {101: 5 * GIB, 102: 0, 103: GIB}


@pytest.mark.parametrize("code, reason", [
    (9, "NVIDIA driver not loaded"),
    (999, "NVML unavailable: Unknown Error"),
])
def test_stub_init_failure(fresh_nvml, monkeypatch, code, reason):
    monkeypatch.setitem(sys.modules, "pynvml", _stub(init_error=code))
    assert list_gpus({}) == []
    assert gpus.process_memory() == {}
    assert gpus.nvml_status() == reason


def test_init_is_tried_once(fresh_nvml, monkeypatch):
    stub = _stub(init_error=9)
    calls = []
    stub.nvmlInit = lambda: (calls.append(1), (_ for _ in ()).throw(_NVMLError(9)))
    monkeypatch.setitem(sys.modules, "pynvml", stub)
    for _ in range(3):
        assert list_gpus({}) == []
        assert gpus.nvml_status() == "NVIDIA driver not loaded"
    assert calls == [1]
