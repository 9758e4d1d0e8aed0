"""Jittor 1.3.11 on today's CUDA: what its CUDA import needs on CUDA 13 and with cuDNN 9.

Jittor 1.3.11 was written for CUDA 10-12 and cuDNN 7-8. On a machine with CUDA 13, or with
cuDNN 9 (what PyTorch's CUDA wheels bring as `nvidia-*` pip packages), its first CUDA import
fails to compile or to find its libraries:

- CUDA 13 removed `cudaDeviceProp.clockRate` and `.computeMode`, which Jittor's
  `extern/cuda/inc/helper_cuda.h` reads (every core file and op library that includes it fails);
- CUDA 13's CUB and Thrust need C++17, and Jittor compiles its CUDA files with `-std=c++14`;
- cuTT, the transpose library Jittor builds at import, reads `clockRate` and `memoryClockRate`;
- cuDNN 9 removed the v6 RNN API that Jittor's `cudnn_rnn` ops call, and split libcudnn into
  other parts than the four cuDNN 8 ones Jittor loads by name (`libcudnn_cnn_infer.so`, ...);
- cuDNN, cuBLAS, cuRAND, cuFFT and cuSPARSE may live in pip's `nvidia/*/lib` folders instead
  of the CUDA folder, where Jittor looks for them (`<nvcc>/../include`, `<nvcc>/../lib64`).

`prepare_cuda` finds nvcc (`nvcc_path`, then the PATH, then /usr/local/cuda), reads what is
installed and, only where something above applies:

- (CUDA >= 13) rewrites Jittor's `helper_cuda.h` in place to read clock rate and compute mode
  with `cudaDeviceGetAttribute`, which every CUDA since 5 has: only where that Jittor is in the
  running virtual environment (the project's .venv) or LANDSCAPE_PATCH_JITTOR=1 allows it
  (otherwise an error says so), the original kept beside it as
  `helper_cuda.h.orig`; Jittor's compile cache does not track this header, so nothing compiled
  is invalidated). In place, because Jittor puts its own include folder first on the command
  line of its op libraries; the file is checked to be 1.3.11's before it is changed;
- (CUDA >= 13) gives Jittor a copy of cuTT, the transpose library it builds at import, whose two
  sources that read `clockRate` and `memoryClockRate` read them with `cudaDeviceGetAttribute`
  (`CUTT_PATH`; unpacked from jittor-offline's cutt-1.2.zip into <JITTOR_HOME>/cuda_compat/).
  Without cuTT, Jittor runs 2-D transposes on the CPU (its transpose op has no CUDA code), which
  puts a device sync and two copies into every training step; where the zip is missing,
  `use_cutt=0` instead;
- builds `<JITTOR_HOME>/cuda_compat/<key>/` and sets `nvcc_path` to its `bin/nvcc`:

    bin/nvcc       the real nvcc, with `-std=c++17` for `-std=c++14` on CUDA >= 13; the other
                   tools are links to the real ones
    include/       links to the CUDA headers and to those of the pip packages; for cuDNN >= 9
                   its cudnn.h is the real one plus the removed RNN functions as stubs that
                   return CUDNN_STATUS_NOT_SUPPORTED (the project's networks have no RNN)
    lib64/         links to the CUDA libraries and to the pip packages' ones, with the unversioned
                   names the linker needs (libcudnn.so -> libcudnn.so.9) and the cuDNN 8 part
                   names Jittor loads pointed at their cuDNN 9 successors

Jittor takes its include and library folders from nvcc's (`<nvcc>/../include`, `../lib64`), so
this folder is all it sees. The libraries found outside the system's search path are loaded
first (ctypes, RTLD_GLOBAL), so that Jittor's compiled ops find them. `cc_flags` and `cc_path`
are left alone: Jittor's own compile cache (jit_utils) keys on them, and a change makes the
next CPU or CUDA process stop with "jit_utils updated, please rerun your command". The key is a
hash of the real nvcc, its version, what was found and this file's recipe: another CUDA gets
another folder. `LANDSCAPE_CUDA_COMPAT=0` turns all of it off.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .core.atomic import atomic_write_text
from .core.errors import LandscapeError


class CudaSetupError(LandscapeError):
    """Jittor cannot be adapted to this machine's CUDA (shown as one line by the CLI)."""

RECIPE = 2  # bump when the folder's content changes
COMPAT_DIR = "cuda_compat"
# the libraries Jittor links (setup_cuda_extern) and cuBLAS's helper, in load order
LIBS = ("cudart", "cublasLt", "cublas", "cudnn", "curand", "cufft", "cusparse")
HEADERS = ("cuda_runtime.h", "cudnn.h", "cublas_v2.h", "curand.h", "cufft.h", "cusparse.h")
# Jittor >= CUDA 11 loads these cuDNN 8 parts by name; cuDNN 9 has their code in these
CUDNN8_PARTS = {"libcudnn_ops_infer.so": "libcudnn_ops.so", "libcudnn_ops_train.so": "libcudnn_ops.so",
                "libcudnn_cnn_infer.so": "libcudnn_cnn.so", "libcudnn_cnn_train.so": "libcudnn_cnn.so"}
# the cuDNN 8 RNN functions Jittor's cudnn_rnn ops call and cuDNN 9 removed
CUDNN9_REMOVED = ("cudnnSetRNNDescriptor_v6", "cudnnGetRNNWorkspaceSize",
                  "cudnnGetRNNTrainingReserveSize", "cudnnGetRNNParamsSize",
                  "cudnnGetRNNLinLayerMatrixParams", "cudnnGetRNNLinLayerBiasParams",
                  "cudnnRNNForwardInference", "cudnnRNNForwardTraining", "cudnnRNNBackwardData",
                  "cudnnRNNBackwardWeights")
ARCH = "aarch64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
SYSTEM_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")


@dataclass
class CudaInstall:
    """What `inspect` found: the real nvcc and where each header and library is."""
    nvcc: Path
    version: tuple[int, int]
    include: Path                  # <nvcc>/../include, where Jittor looks
    lib: Path                      # <nvcc>/../lib64 (or lib)
    headers: dict[str, Path] = field(default_factory=dict)   # name -> the folder holding it
    libs: dict[str, Path] = field(default_factory=dict)      # name -> the library file
    cudnn_major: int | None = None
    include_dirs: list[Path] = field(default_factory=list)   # where headers were found, in order
    lib_dirs: list[Path] = field(default_factory=list)

    def reasons(self) -> list[str]:
        """Why Jittor needs the compatibility folder here (empty: it does not)."""
        out = []
        if self.version >= (13, 0):
            out.append(f"CUDA {self.version[0]}.{self.version[1]}: helper_cuda.h and C++17")
        if self.cudnn_major is not None and self.cudnn_major >= 9:
            out.append(f"cuDNN {self.cudnn_major}: RNN API and library names")
        # where Jittor itself looks (compile_extern.search_file): the CUDA folder and the system's
        home = self.include.parent
        seen_inc = {self.include, home / "targets" / f"{ARCH}-linux" / "include", Path("/usr/include")}
        seen_lib = {self.lib, self.nvcc.parent, home / "targets" / f"{ARCH}-linux" / "lib",
                    Path(f"/usr/lib/{ARCH}-linux-gnu"), Path("/usr/lib")}
        outside = sorted(n for n, d in self.headers.items() if d not in seen_inc)
        outside += sorted(f"lib{n}" for n, p in self.libs.items() if p.parent not in seen_lib)
        if outside:
            out.append("found outside the CUDA folder: " + ", ".join(outside))
        return out


def find_nvcc() -> Path | None:
    """The nvcc Jittor should use: `nvcc_path`, then the PATH, then /usr/local/cuda."""
    env = os.environ.get("nvcc_path")
    if env is not None and Path(env).parent.parent.parent.name == COMPAT_DIR:
        env = os.environ.get("LANDSCAPE_REAL_NVCC", "")  # ours, set by a parent process
    if env is not None:
        return Path(env) if env and Path(env).is_file() else None
    found = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    return Path(found) if Path(found).is_file() else None


def nvcc_version(nvcc: Path) -> tuple[int, int]:
    try:
        out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CudaSetupError(f"{nvcc}: cannot run it ({exc}); point nvcc_path at CUDA's nvcc") from exc
    m = re.search(r"release (\d+)\.(\d+)", out)
    if not m:
        raise CudaSetupError(f"{nvcc} --version printed no 'release X.Y' ({out[-200:]!r}); point"
                             " nvcc_path at CUDA's nvcc")
    return int(m.group(1)), int(m.group(2))


def pip_nvidia_dirs(kind: str) -> list[Path]:
    """The `include` or `lib` folders of pip's nvidia-* packages (nvidia/cudnn/lib, nvidia/cu13/lib,
    ...) on sys.path, sorted."""
    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
    return sorted({d for r in roots for d in Path(r).glob(f"*/{kind}") if d.is_dir()})


def _library(dirs: list[Path], name: str) -> Path | None:
    """lib<name>.so in the first folder that has it, else its shortest versioned file there."""
    for d in dirs:
        plain = d / f"lib{name}.so"
        if plain.is_file():
            return plain
        versions = sorted(d.glob(f"lib{name}.so.*"), key=lambda p: (len(p.name), p.name))
        if versions:
            return versions[0]
    return None


def inspect(nvcc: Path, extra_include: list[Path] | None = None,
            extra_lib: list[Path] | None = None) -> CudaInstall:
    """Where the headers and libraries Jittor needs are: the CUDA folder first, then pip's
    nvidia packages (or `extra_*`), then the system's folders."""
    version = nvcc_version(nvcc)
    home = nvcc.parent.parent
    lib = home / "lib64" if (home / "lib64").is_dir() or not (home / "lib").is_dir() else home / "lib"
    include_dirs = [home / "include", *(extra_include if extra_include is not None
                                        else pip_nvidia_dirs("include")),
                    Path("/usr/include"), Path("/usr/include/x86_64-linux-gnu")]
    lib_dirs = [lib, home / "lib", *(extra_lib if extra_lib is not None else pip_nvidia_dirs("lib")),
                *map(Path, SYSTEM_LIB_DIRS)]
    found = CudaInstall(nvcc=nvcc, version=version, include=home / "include", lib=lib,
                        include_dirs=[d for d in dict.fromkeys(include_dirs) if d.is_dir()],
                        lib_dirs=[d for d in dict.fromkeys(lib_dirs) if d.is_dir()])
    for name in HEADERS:
        where = next((d for d in found.include_dirs if (d / name).is_file()), None)
        if where is not None:
            found.headers[name] = where
    for name in LIBS:
        path = _library(found.lib_dirs, name)
        if path is not None:
            found.libs[name] = path
    if "cudnn.h" in found.headers:
        d = found.headers["cudnn.h"]
        text = "".join((d / h).read_text(errors="replace") for h in ("cudnn.h", "cudnn_version.h")
                       if (d / h).is_file())
        m = re.search(r"#define\s+CUDNN_MAJOR\s+(\d+)", text)
        found.cudnn_major = int(m.group(1)) if m else None
    return found


# ---------------------------------------------------------------------------- the folder
NVCC_WRAPPER = """#!/bin/sh
# Jittor's nvcc, made by pipeline/jt_cuda.py ({why}): the real nvcc{std_note}.
for a do
  shift
  case "$a" in
    {std_case}
    *) set -- "$@" "$a" ;;
  esac
done
exec "{real}" "$@"
"""
PATCH_MARK = "// patched by pipeline/jt_cuda.py"


def helper_cuda_text(original: str) -> str:
    """Jittor's helper_cuda.h with the cudaDeviceProp fields CUDA 13 removed read through
    cudaDeviceGetAttribute; raises if the file is not the one this was written for."""
    helper = ("static inline int jt_device_attr(cudaDeviceAttr attr, int device) {\n"
              "  int value = 0;\n  cudaDeviceGetAttribute(&value, attr, device);\n"
              "  return value;\n}\n\n")
    anchor = "inline int gpuDeviceInit("
    counts = (original.count(anchor), original.count("deviceProp.computeMode"),
              original.count("deviceProp.clockRate"))
    if counts != (1, 3, 1):
        raise CudaSetupError("Jittor's extern/cuda/inc/helper_cuda.h is not the one of Jittor 1.3.11"
                           f" (gpuDeviceInit, computeMode, clockRate seen {counts} times, expected"
                           " (1, 3, 1)); set LANDSCAPE_CUDA_COMPAT=0 and check it by hand")
    head, tail = original.split(anchor)
    init, rest = tail.split("\n}\n", 1)
    init = init.replace("deviceProp.computeMode", "jt_device_attr(cudaDevAttrComputeMode, devID)")
    rest = rest.replace("deviceProp.computeMode",
                        "jt_device_attr(cudaDevAttrComputeMode, current_device)")
    rest = rest.replace("deviceProp.clockRate", "jt_device_attr(cudaDevAttrClockRate, current_device)")
    text = head + helper + anchor + init + "\n}\n" + rest
    if "deviceProp.computeMode" in text or "deviceProp.clockRate" in text:
        raise RuntimeError("helper_cuda.h: a removed cudaDeviceProp field was left in place")
    return (f"{PATCH_MARK} for CUDA >= 13: clockRate and computeMode are read with\n"
            "// cudaDeviceGetAttribute (CUDA 13 removed the fields); the original is helper_cuda.h.orig\n"
            + text)


def patch_helper_cuda(jittor_dir: Path) -> bool:
    """Rewrite Jittor's helper_cuda.h for CUDA >= 13 (once; the original kept as .orig). True
    when it was changed now."""
    path = jittor_dir / "extern" / "cuda" / "inc" / "helper_cuda.h"
    original = path.read_text()
    if PATCH_MARK in original:
        return False
    text = helper_cuda_text(original)
    try:
        backup = path.with_name(path.name + ".orig")
        if not backup.exists():
            atomic_write_text(backup, original)
        atomic_write_text(path, text)
    except OSError as exc:
        raise CudaSetupError(f"{path}: cannot rewrite it for CUDA 13 ({exc.strerror}); run once as the"
                           " user who installed Jittor, or set LANDSCAPE_CUDA_COMPAT=0 and use"
                           " CUDA <= 12") from exc
    return True


def check_may_rewrite(jittor_dir: Path) -> None:
    """Jittor's files are rewritten only where they belong to the running virtual environment
    (the project's .venv, made by `make setup`) or with LANDSCAPE_PATCH_JITTOR=1."""
    if os.environ.get("LANDSCAPE_PATCH_JITTOR") == "1":
        return
    prefix = Path(sys.prefix).resolve()
    in_venv = sys.prefix != sys.base_prefix and prefix in jittor_dir.resolve().parents
    if not in_venv:
        raise CudaSetupError(
            f"{jittor_dir / 'extern' / 'cuda' / 'inc' / 'helper_cuda.h'}: CUDA 13 needs this file"
            " of Jittor rewritten (the original is kept as .orig), and this Jittor is not in the"
            " running virtual environment; use the project's .venv (make setup), or allow it"
            " with LANDSCAPE_PATCH_JITTOR=1, or use CUDA <= 12")


def cudnn_text(real: Path) -> str:
    stubs = "".join(f"JT_CUDNN_REMOVED({name})\n" for name in CUDNN9_REMOVED)
    return ("// made by pipeline/jt_cuda.py: the real cudnn.h, and for cuDNN >= 9 the RNN functions it\n"
            "// removed, which Jittor's cudnn_rnn ops call, as stubs that say NOT_SUPPORTED.\n"
            f'#pragma once\n#include "{real}"\n'
            "#if defined(__cplusplus) && CUDNN_MAJOR >= 9\n"
            "#define JT_CUDNN_REMOVED(name) template <class... A> static inline cudnnStatus_t"
            " name(A...) { return CUDNN_STATUS_NOT_SUPPORTED; }\n"
            f"{stubs}#undef JT_CUDNN_REMOVED\n#endif\n")


def compat_key(found: CudaInstall) -> str:
    text = "\n".join([str(RECIPE), str(found.nvcc.resolve()), repr(found.version),
                      repr(sorted((k, str(v)) for k, v in found.headers.items())),
                      repr(sorted((k, str(v)) for k, v in found.libs.items())), repr(found.cudnn_major)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _link_entries(src: Path, dst: Path) -> None:
    """A link in `dst` to each entry of `src` that `dst` does not have yet."""
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if not os.path.lexists(target):
            target.symlink_to(entry.resolve() if entry.is_symlink() else entry)


def build_compat(found: CudaInstall, root: Path) -> Path:
    """The compatibility folder for `found` under `root` (made once: built in a temp folder and
    renamed into place, so a half-made folder is never used); its path."""
    folder = root / compat_key(found)
    if (folder / "bin" / "nvcc").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        for sub in ("bin", "include", "lib64"):
            (tmp / sub).mkdir()
        real = found.nvcc.resolve()
        for entry in sorted(real.parent.iterdir()):
            if entry.name not in ("nvcc", "nvcc.profile"):
                (tmp / "bin" / entry.name).symlink_to(entry.resolve())
        for d in [found.include, *(d for d in dict.fromkeys(found.headers.values()))]:
            if d.is_dir():
                _link_entries(d, tmp / "include")
        for d in [found.lib, *(p.parent for p in found.libs.values())]:
            if d.is_dir():
                _link_entries(d, tmp / "lib64")
        for name, path in found.libs.items():  # the names `-l<name>` and Jittor's checks need
            plain = tmp / "lib64" / f"lib{name}.so"
            if not os.path.lexists(plain):
                plain.symlink_to(path.resolve())
        if found.cudnn_major is not None and found.cudnn_major >= 9:
            for old, new in CUDNN8_PARTS.items():
                part = _library([p.parent for p in found.libs.values()] + found.lib_dirs,
                                new[3:-3])
                if part is not None and not os.path.lexists(tmp / "lib64" / old):
                    (tmp / "lib64" / old).symlink_to(part.resolve())
            (tmp / "include" / "cudnn.h").unlink(missing_ok=True)
            (tmp / "include" / "cudnn.h").write_text(cudnn_text(found.headers["cudnn.h"] / "cudnn.h"))
        std_case, std_note = "", ""
        if found.version >= (13, 0):
            std_case = '-std=c++14) set -- "$@" -std=c++17 ;;'
            std_note = " with C++17 for C++14 (CUDA >= 13's CUB and Thrust need it)"
        wrapper = tmp / "bin" / "nvcc"
        wrapper.write_text(NVCC_WRAPPER.format(
            why="; ".join(found.reasons()) or "no change needed", real=real,
            std_case=std_case, std_note=std_note))
        wrapper.chmod(0o755)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process made it first
            if not (folder / "bin" / "nvcc").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _on_default_path(path: Path) -> bool:
    return str(path.parent) in SYSTEM_LIB_DIRS or path.parent == Path("/lib")


# cuTT 1.2's sources that read the fields CUDA 13 removed: how often each is read there
CUTT_READS = {"cuttGpuModel.cpp": {"prop.clockRate": 1, "prop.memoryClockRate": 1},
              "cuttplan.cpp": {"prop.clockRate": 1, "prop.memoryClockRate": 0}}
CUTT_ATTRS = {"prop.clockRate": "cudaDevAttrClockRate", "prop.memoryClockRate": "cudaDevAttrMemoryClockRate"}
CUTT_MARK = ".patched_by_landscape"


def cutt_source_text(name: str, original: str) -> str:
    """One of cuTT 1.2's sources with the removed cudaDeviceProp fields read through
    cudaDeviceGetAttribute (of the current device, the one cuTT plans for)."""
    reads = {field: original.count(field) for field in CUTT_ATTRS}
    if reads != CUTT_READS[name]:
        raise CudaSetupError(f"cuTT's {name} is not cutt-1.2's (reads {reads}); set use_cutt=0")
    for field, attr in CUTT_ATTRS.items():
        original = original.replace(field, f"jt_cutt_attr({attr})")
    return ("// patched by pipeline/jt_cuda.py for CUDA >= 13 (cudaDeviceProp lost these fields)\n"
            "#include <cuda_runtime.h>\nstatic inline int jt_cutt_attr(cudaDeviceAttr attr) {\n"
            "  int device = 0, value = 0;\n  cudaGetDevice(&device);\n"
            "  cudaDeviceGetAttribute(&value, attr, device);\n  return value;\n}\n" + original)


def patched_cutt(jittor_home: str | os.PathLike) -> Path | None:
    """cuTT 1.2 for CUDA >= 13, unpacked once from jittor-offline's zip into
    <JITTOR_HOME>/cuda_compat/cutt-1.2 (for CUTT_PATH); None without the zip.

    Jittor compiles cuTT's sources from CUTT_PATH but takes its headers from the folder it
    unpacks cuTT to, <JITTOR_HOME>/.cache/jittor/cutt/cutt-1.2: where that folder is missing it
    becomes a link to this copy (the headers are cuTT's own); an existing one is left as it is."""
    spec = importlib.util.find_spec("jittor_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    archive = Path(list(spec.submodule_search_locations)[0]) / "cutt-1.2.zip"
    target = Path(jittor_home) / COMPAT_DIR / "cutt-1.2"
    if not (target / CUTT_MARK).is_file():
        if not archive.is_file():
            return None
        _unpack_cutt(archive, target)
    headers = Path(jittor_home) / ".cache" / "jittor" / "cutt" / "cutt-1.2"
    if not os.path.lexists(headers):
        headers.parent.mkdir(parents=True, exist_ok=True)
        try:
            headers.symlink_to(target, target_is_directory=True)
        except FileExistsError:  # another process (an MPI rank) made it meanwhile
            pass
    return target


def _unpack_cutt(archive: Path, target: Path) -> None:
    """cuTT from `archive`, its two sources rewritten, built in a temp folder and renamed into
    `target` (a half-made copy is never used)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cutt.", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise CudaSetupError(f"{archive}: not a readable zip ({exc}); reinstall jittor-offline,"
                                 " or set use_cutt=0") from exc
        src = tmp / "cutt-1.2" / "src"
        for name in CUTT_READS:
            (src / name).write_text(cutt_source_text(name, (src / name).read_text()))
        (tmp / "cutt-1.2" / CUTT_MARK).write_text(f"from {archive}\n")
        try:
            os.rename(tmp / "cutt-1.2", target)
        except OSError:  # another process made it first
            if not (target / CUTT_MARK).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def installed_jittor() -> Path | None:
    """The folder of the jittor package that `import jittor` will load (not imported here)."""
    spec = importlib.util.find_spec("jittor")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def prepare_cuda(jittor_home: str | os.PathLike, log=None) -> dict:
    """Before Jittor's CUDA import: build (once) and use the compatibility folder where this
    machine needs it. Returns what was done: {"nvcc", "version", "reasons", "folder"}; an empty
    dict when there is no nvcc or it is off (Jittor then does as it always does)."""
    if os.environ.get("LANDSCAPE_CUDA_COMPAT", "1") == "0":
        return {}
    nvcc = find_nvcc()
    if nvcc is None:
        return {}
    jittor_dir = installed_jittor()
    if jittor_dir is None:
        return {}
    found = inspect(nvcc)
    reasons = found.reasons()
    info = {"nvcc": str(nvcc), "version": "%d.%d" % found.version, "reasons": reasons, "folder": None}
    if not reasons:
        return info
    folder = build_compat(found, Path(jittor_home) / COMPAT_DIR)
    info["folder"] = str(folder)
    os.environ["nvcc_path"] = str(folder / "bin" / "nvcc")
    os.environ["LANDSCAPE_REAL_NVCC"] = str(nvcc)
    if found.version >= (13, 0):
        if PATCH_MARK not in (jittor_dir / "extern" / "cuda" / "inc" / "helper_cuda.h").read_text():
            check_may_rewrite(jittor_dir)
        info["patched_now"] = patch_helper_cuda(jittor_dir)
        cutt = patched_cutt(jittor_home)
        if cutt is not None:
            os.environ.setdefault("CUTT_PATH", str(cutt))
        else:  # Jittor would unpack a cuTT that does not build here
            os.environ.setdefault("use_cutt", "0")
        info["cutt"] = str(cutt) if cutt else None
    for name in LIBS:  # ops link lib<name>.so.N: load the ones the loader would not find
        path = found.libs.get(name)
        if path is not None and not _on_default_path(path):
            ctypes.CDLL(str(path.resolve()), mode=os.RTLD_NOW | os.RTLD_GLOBAL)
    if log is not None:
        log(f"jittor: CUDA {info['version']} through {folder} ({'; '.join(reasons)})")
    return info
