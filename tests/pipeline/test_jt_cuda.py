"""Jittor on CUDA 13 / cuDNN 9 (pipeline/jt_cuda.py), without a GPU: a fake CUDA folder and a
fake pip cuDNN, the compatibility folder made from them, its nvcc wrapper run for real (the
"real" nvcc is a script that records its arguments), a copy of the installed Jittor's
helper_cuda.h rewritten, and the cuDNN stubs compiled and run with g++."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline import jt_cuda

JITTOR = importlib.util.find_spec("jittor")
OFFLINE = importlib.util.find_spec("jittor_offline")


def _fake_cuda(tmp_path: Path, release: str = "13.0", cudnn: int = 9, cudnn_in_pip: bool = True):
    """A CUDA folder (nvcc that records its arguments, headers, lib64) and a pip-like cuDNN."""
    home = tmp_path / "cuda"
    (home / "bin").mkdir(parents=True)
    (home / "include").mkdir()
    (home / "lib64").mkdir()
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text(f'#!/bin/sh\ncase "$1" in --version) echo "Cuda compilation tools, release {release},'
                    f' V{release}.1"; exit 0;; esac\nprintf "%s\\n" "$@" > "{tmp_path}/args"\n')
    nvcc.chmod(0o755)
    (home / "bin" / "ptxas").write_text("")
    (home / "include" / "cuda_runtime.h").write_text("// cuda\n")
    for name in ("cublas_v2.h", "curand.h", "cufft.h", "cusparse.h"):
        (home / "include" / name).write_text("")
    for lib in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10",
                "libcufft.so.12", "libcusparse.so.12"):
        (home / "lib64" / lib).write_text("")
    pip = tmp_path / "site" / "nvidia" / "cudnn"
    inc, lib = (pip / "include", pip / "lib") if cudnn_in_pip else (home / "include", home / "lib64")
    inc.mkdir(parents=True, exist_ok=True)
    lib.mkdir(parents=True, exist_ok=True)
    (inc / "cudnn.h").write_text('#include "cudnn_version.h"\n')
    (inc / "cudnn_version.h").write_text(f"#define CUDNN_MAJOR {cudnn}\n")
    parts = ["libcudnn.so", "libcudnn_ops.so", "libcudnn_cnn.so"] if cudnn >= 9 else [
        "libcudnn.so", "libcudnn_ops_infer.so", "libcudnn_ops_train.so", "libcudnn_cnn_infer.so",
        "libcudnn_cnn_train.so"]
    for part in parts:
        (lib / f"{part}.{cudnn}").write_text("")
    extra = ([pip / "include"], [pip / "lib"]) if cudnn_in_pip else ([], [])
    return nvcc, extra


def _jittor_dir(tmp_path: Path) -> Path:
    """A copy of the installed Jittor's extern/cuda/inc (what jt_cuda reads and rewrites)."""
    if JITTOR is None:
        pytest.skip("jittor is not installed")
    real = Path(list(JITTOR.submodule_search_locations)[0]) / "extern" / "cuda" / "inc"
    copy = tmp_path / "jittor"
    shutil.copytree(real, copy / "extern" / "cuda" / "inc")
    return copy


def test_cuda_13_and_cudnn_9_in_pip_need_the_folder_and_cuda_12_does_not(tmp_path):
    nvcc, (inc, lib) = _fake_cuda(tmp_path / "a")
    found = jt_cuda.inspect(nvcc, inc, lib)
    assert found.version == (13, 0) and found.cudnn_major == 9
    assert found.headers["cudnn.h"] == inc[0] and found.libs["cudnn"] == lib[0] / "libcudnn.so.9"
    assert found.libs["cublas"] == nvcc.parent.parent / "lib64" / "libcublas.so.13"
    reasons = found.reasons()
    assert len(reasons) == 3 and "CUDA 13.0" in reasons[0] and "cuDNN 9" in reasons[1]
    assert "cudnn.h" in reasons[2] and "libcudnn" in reasons[2] and "cublas" not in reasons[2]
    nvcc12, _ = _fake_cuda(tmp_path / "b", release="12.4", cudnn=8, cudnn_in_pip=False)
    assert jt_cuda.inspect(nvcc12, [], []).reasons() == []
    # cuDNN 8 where Jittor looks by itself besides the CUDA folder (apt's /usr/include,
    # /usr/lib/<arch>-linux-gnu) needs nothing either
    found = jt_cuda.inspect(nvcc12, [], [])
    found.headers["cudnn.h"] = Path("/usr/include")
    found.libs["cudnn"] = Path(f"/usr/lib/{jt_cuda.ARCH}-linux-gnu/libcudnn.so")
    assert found.reasons() == []


def test_the_folder_links_headers_and_libraries_and_its_nvcc_asks_for_cxx17(tmp_path):
    nvcc, (inc, lib) = _fake_cuda(tmp_path)
    found = jt_cuda.inspect(nvcc, inc, lib)
    folder = jt_cuda.build_compat(found, tmp_path / "home" / jt_cuda.COMPAT_DIR)
    assert folder == jt_cuda.build_compat(found, tmp_path / "home" / jt_cuda.COMPAT_DIR)
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folder left
    links = folder / "lib64"
    assert (links / "libcudnn.so").resolve() == (lib[0] / "libcudnn.so.9").resolve()
    assert (links / "libcublas.so").resolve() == (nvcc.parent.parent / "lib64" / "libcublas.so.13")
    assert (links / "libcudnn_cnn_train.so").resolve() == lib[0] / "libcudnn_cnn.so.9"
    assert (links / "libcudnn_ops_infer.so").resolve() == lib[0] / "libcudnn_ops.so.9"
    assert f'#include "{inc[0] / "cudnn.h"}"' in (folder / "include" / "cudnn.h").read_text()
    assert (folder / "include" / "cudnn_version.h").resolve() == inc[0] / "cudnn_version.h"
    assert (folder / "include" / "cuda_runtime.h").is_symlink()
    assert (folder / "bin" / "ptxas").resolve() == nvcc.parent / "ptxas"
    # the wrapper runs the real nvcc: C++17 for C++14, the rest kept
    out = subprocess.run([str(folder / "bin" / "nvcc"), "-std=c++14", "-x", "cu", "a b.cu", "-o", "x.o"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    args = (tmp_path / "args").read_text().splitlines()
    assert args == ["-std=c++17", "-x", "cu", "a b.cu", "-o", "x.o"]
    version = subprocess.run([str(folder / "bin" / "nvcc"), "--version"], capture_output=True, text=True)
    assert "release 13.0" in version.stdout
    # another CUDA, another folder
    nvcc2, (inc2, lib2) = _fake_cuda(tmp_path / "other", release="13.1")
    assert jt_cuda.build_compat(jt_cuda.inspect(nvcc2, inc2, lib2),
                                tmp_path / "home" / jt_cuda.COMPAT_DIR) != folder


def test_cuda_12_with_cudnn_9_keeps_cxx14(tmp_path):
    nvcc, (inc, lib) = _fake_cuda(tmp_path, release="12.8")
    found = jt_cuda.inspect(nvcc, inc, lib)
    assert [r.split(":")[0] for r in found.reasons()] == ["cuDNN 9", "found outside the CUDA folder"]
    folder = jt_cuda.build_compat(found, tmp_path / "home")
    assert "cudnnRNNForwardTraining" in (folder / "include" / "cudnn.h").read_text()
    subprocess.run([str(folder / "bin" / "nvcc"), "-std=c++14", "-c"], check=True)
    assert (tmp_path / "args").read_text().splitlines() == ["-std=c++14", "-c"]


def test_helper_cuda_reads_the_removed_fields_through_device_attributes(tmp_path):
    original = (_jittor_dir(tmp_path) / "extern" / "cuda" / "inc" / "helper_cuda.h").read_text()
    text = jt_cuda.helper_cuda_text(original)
    assert "deviceProp.computeMode" not in text and "deviceProp.clockRate" not in text
    assert text.count("jt_device_attr(cudaDevAttrComputeMode, devID)") == 1
    assert text.count("jt_device_attr(cudaDevAttrComputeMode, current_device)") == 2
    assert text.count("jt_device_attr(cudaDevAttrClockRate, current_device)") == 1
    assert text.index("static inline int jt_device_attr") < text.index("inline int gpuDeviceInit(")
    # the rest of Jittor's file is kept line for line
    kept = [ln for ln in original.splitlines() if "deviceProp.computeMode" not in ln
            and "deviceProp.clockRate" not in ln]
    assert all(ln in text for ln in kept)
    with pytest.raises(jt_cuda.CudaSetupError, match="LANDSCAPE_CUDA_COMPAT=0"):
        jt_cuda.helper_cuda_text(original.replace("deviceProp.clockRate", "deviceProp.clockRateX", 1)
                                 + "deviceProp.clockRate")


def test_helper_cuda_is_rewritten_in_place_once_and_the_original_kept(tmp_path):
    jdir = _jittor_dir(tmp_path)
    path = jdir / "extern" / "cuda" / "inc" / "helper_cuda.h"
    original = path.read_text()
    assert jt_cuda.patch_helper_cuda(jdir) is True
    assert path.read_text() == jt_cuda.helper_cuda_text(original)
    assert path.with_name("helper_cuda.h.orig").read_text() == original
    assert jt_cuda.patch_helper_cuda(jdir) is False  # already done: left as it is
    assert path.read_text() == jt_cuda.helper_cuda_text(original)
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("."))  == []


def test_a_jittor_that_cannot_be_written_gets_an_error_that_names_the_file(tmp_path, monkeypatch):
    jdir = _jittor_dir(tmp_path)

    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(jt_cuda, "atomic_write_text", refuse)
    with pytest.raises(jt_cuda.CudaSetupError, match="helper_cuda.h: cannot rewrite it for CUDA 13 "
                                           r"\(Permission denied\).*LANDSCAPE_CUDA_COMPAT=0"):
        jt_cuda.patch_helper_cuda(jdir)


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_the_removed_cudnn_rnn_functions_compile_and_say_not_supported(tmp_path):
    (tmp_path / "ours").mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "ours" / "cudnn.h").write_text(jt_cuda.cudnn_text(tmp_path / "real" / "cudnn.h"))
    (tmp_path / "real" / "cudnn.h").write_text(
        "#define CUDNN_MAJOR 9\ntypedef enum { CUDNN_STATUS_SUCCESS = 0,"
        " CUDNN_STATUS_NOT_SUPPORTED = 9 } cudnnStatus_t;\n"
        "static inline cudnnStatus_t cudnnCreate(int *h) { *h = 1; return CUDNN_STATUS_SUCCESS; }\n")
    (tmp_path / "use.cc").write_text(
        '#include "cudnn.h"\n#include <cstdio>\nint main() { int h = 0; size_t n = 0; float *p = nullptr;\n'
        "  int a = cudnnCreate(&h);\n"
        "  int b = cudnnRNNForwardTraining(h, 1, 2, &p, p, n, &n);\n"
        "  int c = cudnnGetRNNWorkspaceSize(h, 3, &n);\n"
        '  std::printf("%d %d %d %d", a, b, c, h); }\n')
    exe = tmp_path / "use"
    subprocess.run(["g++", "-std=c++14", f"-I{tmp_path / 'ours'}",
                    str(tmp_path / "use.cc"), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)], capture_output=True, text=True).stdout == "0 9 9 1"


def test_prepare_points_jittor_at_the_folder_once_and_child_processes_find_the_real_nvcc(
        tmp_path, monkeypatch):
    jdir = _jittor_dir(tmp_path)
    monkeypatch.setattr(jt_cuda, "installed_jittor", lambda: jdir)
    nvcc, (inc, lib) = _fake_cuda(tmp_path, cudnn_in_pip=False)
    monkeypatch.setenv("nvcc_path", str(nvcc))
    monkeypatch.setenv("cc_flags", "-O1")
    monkeypatch.delenv("use_cutt", raising=False)
    monkeypatch.delenv("CUTT_PATH", raising=False)
    monkeypatch.delenv("LANDSCAPE_CUDA_COMPAT", raising=False)
    monkeypatch.delenv("LANDSCAPE_REAL_NVCC", raising=False)
    monkeypatch.setattr(jt_cuda, "pip_nvidia_dirs", lambda kind: [])
    monkeypatch.setattr(jt_cuda.ctypes, "CDLL", lambda *a, **k: None)  # the fake libraries are empty
    monkeypatch.delenv("LANDSCAPE_PATCH_JITTOR", raising=False)
    # this Jittor copy is not in the running virtual environment: not rewritten without consent
    with pytest.raises(jt_cuda.CudaSetupError, match="helper_cuda.h: CUDA 13 needs.*LANDSCAPE_PATCH_JITTOR=1"):
        jt_cuda.prepare_cuda(tmp_path / "home")
    assert jt_cuda.PATCH_MARK not in (jdir / "extern" / "cuda" / "inc" / "helper_cuda.h").read_text()
    monkeypatch.setenv("LANDSCAPE_PATCH_JITTOR", "1")
    lines = []
    info = jt_cuda.prepare_cuda(tmp_path / "home", lines.append)
    folder = Path(info["folder"])
    assert os.environ["nvcc_path"] == str(folder / "bin" / "nvcc")
    assert os.environ["cc_flags"] == "-O1"  # Jittor's jit_utils cache keys on it: left alone
    assert info["patched_now"] is True
    if OFFLINE is not None:  # cuTT from jittor-offline's zip, patched; else no cuTT at all
        assert os.environ["CUTT_PATH"] == info["cutt"] == str(
            tmp_path / "home" / jt_cuda.COMPAT_DIR / "cutt-1.2")
        assert "use_cutt" not in os.environ
    else:
        assert os.environ["use_cutt"] == "0" and "CUTT_PATH" not in os.environ
    assert jt_cuda.PATCH_MARK in (jdir / "extern" / "cuda" / "inc" / "helper_cuda.h").read_text()
    assert len(lines) == 1 and "CUDA 13.0" in lines[0] and str(folder) in lines[0]
    again = jt_cuda.prepare_cuda(tmp_path / "home")  # a child process: env already points at it
    assert again["folder"] == str(folder) and again["nvcc"] == str(nvcc)
    assert again["patched_now"] is False
    monkeypatch.setenv("LANDSCAPE_CUDA_COMPAT", "0")
    assert jt_cuda.prepare_cuda(tmp_path / "home") == {}


def test_without_nvcc_nothing_is_done(tmp_path, monkeypatch):
    monkeypatch.setenv("nvcc_path", "")
    assert jt_cuda.find_nvcc() is None
    assert jt_cuda.prepare_cuda(tmp_path) == {}
    assert not (tmp_path / jt_cuda.COMPAT_DIR).exists()


@pytest.mark.skipif(OFFLINE is None, reason="needs jittor-offline's cutt-1.2.zip")
def test_cutt_is_unpacked_into_our_folder_with_the_removed_fields_read_otherwise(tmp_path):
    home = tmp_path / "home"
    cutt = jt_cuda.patched_cutt(home)
    assert cutt == home / jt_cuda.COMPAT_DIR / "cutt-1.2"
    for name in jt_cuda.CUTT_READS:
        text = (cutt / "src" / name).read_text()
        assert "prop.clockRate" not in text and "prop.memoryClockRate" not in text
        assert "jt_cutt_attr(cudaDevAttrClockRate)" in text
    assert "jt_cutt_attr(cudaDevAttrMemoryClockRate)" in (cutt / "src" / "cuttGpuModel.cpp").read_text()
    untouched = (cutt / "src" / "cutt.cpp").read_text()
    with zipfile.ZipFile(Path(list(OFFLINE.submodule_search_locations)[0]) / "cutt-1.2.zip") as zf:
        assert untouched == zf.read("cutt-1.2/src/cutt.cpp").decode()
    # Jittor takes cuTT's headers from its own unpack folder: a link to ours where it is missing
    headers = home / ".cache" / "jittor" / "cutt" / "cutt-1.2"
    assert headers.is_symlink() and headers.resolve() == cutt.resolve()
    marker = (cutt / jt_cuda.CUTT_MARK).stat().st_mtime_ns
    assert jt_cuda.patched_cutt(home) == cutt  # once
    assert (cutt / jt_cuda.CUTT_MARK).stat().st_mtime_ns == marker
    assert sorted(p.name for p in cutt.parent.iterdir()) == ["cutt-1.2"]  # no temp folder left
    with pytest.raises(jt_cuda.CudaSetupError, match="not cutt-1.2's"):
        jt_cuda.cutt_source_text("cuttplan.cpp", "prop.clockRate prop.clockRate")


@pytest.mark.skipif(OFFLINE is None, reason="needs jittor-offline's cutt-1.2.zip")
def test_an_existing_cutt_folder_of_jittor_is_left_as_it_is(tmp_path):
    home = tmp_path / "home"
    theirs = home / ".cache" / "jittor" / "cutt" / "cutt-1.2"
    theirs.mkdir(parents=True)
    (theirs / "someone-elses-file").write_text("kept")
    cutt = jt_cuda.patched_cutt(home)
    assert cutt == home / jt_cuda.COMPAT_DIR / "cutt-1.2" and (cutt / jt_cuda.CUTT_MARK).is_file()
    assert not theirs.is_symlink() and [p.name for p in theirs.iterdir()] == ["someone-elses-file"]
    assert (theirs / "someone-elses-file").read_text() == "kept"


def test_a_broken_cutt_zip_is_named(tmp_path):
    archive = tmp_path / "cutt-1.2.zip"
    archive.write_bytes(b"not a zip")
    with pytest.raises(jt_cuda.CudaSetupError, match=r"cutt-1.2.zip: not a readable zip.*use_cutt=0"):
        jt_cuda._unpack_cutt(archive, tmp_path / "out" / "cutt-1.2")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # nothing half-made


def test_an_nvcc_that_cannot_run_is_named(tmp_path):
    broken = tmp_path / "nvcc"
    broken.write_text("not a program")  # not executable
    with pytest.raises(jt_cuda.CudaSetupError, match="nvcc: cannot run it.*nvcc_path"):
        jt_cuda.nvcc_version(broken)


def test_the_jittor_of_the_running_virtual_environment_may_be_rewritten(monkeypatch):
    if JITTOR is None or sys.prefix == sys.base_prefix:
        pytest.skip("needs jittor installed in a virtual environment (the project's .venv)")
    monkeypatch.delenv("LANDSCAPE_PATCH_JITTOR", raising=False)
    jt_cuda.check_may_rewrite(Path(list(JITTOR.submodule_search_locations)[0]))  # no error
