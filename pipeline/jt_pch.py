"""A precompiled header and a compile driver for Jittor's CPU kernels: the same kernels,
compiled in a third of the time.

Jittor compiles every fused operator it meets into its own shared library (`g++ -Ofast`, one
process per kernel), and each of those compiles spends most of its time parsing the same Jittor
and C++ headers (var.h, op_register.h, the op headers, <cmath>...). A first training step of the
demo compiles ~300 kernels: ~220 s on 2 cores, ~112 s with the header (docs/benchmarks.md).
GCC can parse those headers once into a precompiled header (`.gch`) and load it instead:
Jittor's compiler becomes a small wrapper script that adds `-include H` to each kernel's
command line.

The kernels' code is unchanged: the precompiled header holds only headers the kernels include
anyway, built with the kernels' own command-line flags (GCC refuses a `.gch` made with other
flags and then parses the header's text, which gives the same result more slowly), and
`#define JIT 1`, the one macro every kernel defines before its includes and that Jittor's
headers test (JIT_cpu, which some kernels also define, is read by no header they include).
`tests/pipeline/test_jt_pch.py` and `tools/kernel_pch_check.py` compile kernels both ways and
compare their code (`.text` bytes).

Jittor's oneDNN kernels (mkl_conv*, mkl_matmul*: a handful per network) are compiled without it:
with it their (set-up) code came out laid out differently, so the wrapper passes them through.

The wrapper also compiles each distinct kernel source once: Jittor names kernels by their op
key, and 43 of the 299 kernels of a demo training step have the same source text as another
(kernels that differ only by a scalar constant, which they read at run time, among them). The
first compile of such a kernel (to assembly) reuses the first one's, with the kernel's name put
in for the other's (WRAPPER says how), and logs it in `kernels_<key>.asm/reused.log`.

Jittor runs each kernel's compile through `<python> <jittor>/utils/asm_tuner.py`: a Python
process (~0.2 s to start) that compiles the kernel to assembly with -g, applies the assembly
rewrites the source asks for (`//@begin replace`: non-temporal stores, in ~6% of the kernels),
then assembles and links it. Jittor's `python_path` flag is used for nothing else, so it points
at a shell driver (TUNER) that runs the same two compiles itself, without -g (debug information
changes no code), for every kernel with no rewrite, and hands the others to asm_tuner: a kernel
compiles in ~0.4 s instead of ~0.75 s, and a demo training step's 299 kernels in 70 s instead
of 118 (docs/benchmarks.md; every kernel's `.text` checked identical to Jittor's own compile).
`LANDSCAPE_KERNEL_DIRECT=0` leaves asm_tuner to every kernel.

Jittor's kernel cache keys on the compile command, which names the wrapper and the driver, and
their names hold a hash of the compiler, its flags, Jittor's version and the header's includes:
kernels compiled without them are compiled once more with them, never mixed up.

Used on CPU with GCC only (CUDA kernels go through nvcc; clang has another PCH scheme).
`LANDSCAPE_KERNEL_PCH=0` turns it off.

Jittor's core (`patch_core_build`, below): the ~160 C++ files Jittor compiles at its first
import get a precompiled header of the Jittor headers most of them include, and the build pool
one process per core instead of Jittor's one per 3 GiB of memory (8 on a 2-core laptop with 24
GiB): a fresh first import in 165 s instead of 244 (`tools.core_pch_check`, which also checks
that both builds compute the same). `LANDSCAPE_CORE_PCH=0` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
from pathlib import Path

from .core.atomic import atomic_path, atomic_write_text

# what Jittor's CPU kernels include most (counted over the ~1,200 kernel sources of the project's
# cache); a kernel that includes fewer sees more declarations, and its code stays the same
# (checked: the .text bytes of all 299 kernels of a demo training step)
KERNEL_INCLUDES = (
    "<cmath>", "<algorithm>", "<assert.h>", "<limits>", "<random>",
    '"var.h"', '"fused_op.h"', '"executor.h"', '"ops/op_register.h"', '"misc/cpu_math.h"',
    '"ops/array_op.h"', '"ops/binary_op.h"', '"ops/unary_op.h"', '"ops/ternary_op.h"',
    '"ops/broadcast_to_op.h"', '"ops/reduce_op.h"', '"ops/reindex_op.h"', '"ops/index_op.h"',
    '"ops/getitem_op.h"', '"ops/setitem_op.h"',
)
PCH_DIR = "landscape_pch"
BUILD_TIMEOUT_S = 300


def header_text(key: str) -> str:
    lines = [f"// Jittor kernel headers, precompiled (pipeline/jt_pch.py); key {key}",
             "#define JIT 1"]
    return "\n".join(lines + [f"#include {inc}" for inc in KERNEL_INCLUDES]) + "\n"


def pch_key(cc_path: str, cc_flags: str, version: str) -> str:
    text = "\n".join([cc_path, cc_flags, version, *KERNEL_INCLUDES])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compile_flags(cc_flags: str) -> list[str]:
    """cc_flags without the linker's (-shared, -l, -L): those the header is compiled with."""
    return [f for f in shlex.split(cc_flags) if f != "-shared" and not f.startswith(("-l", "-L"))]


def _compiler_is_gcc(cc_path: str) -> bool:
    name = Path(cc_path).name
    return name.startswith(("g++", "gcc", "c++")) and "clang" not in name


def build_pch(cc_path: str, cc_flags: str, folder: Path, key: str) -> Path:
    """Write folder/kernels_<key>.h and its .gch (each to a temp name, then renamed); return the
    header. Raises RuntimeError with the compiler's message when GCC cannot build it."""
    # -g: Jittor compiles each kernel to assembly with -g (utils/asm_tuner.py), and GCC uses a
    # header precompiled with -g also where no debug information is asked for
    return _precompile(cc_path, folder / f"kernels_{key}.h", header_text(key),
                       ["-g", *compile_flags(cc_flags)])


def _precompile(cc_path: str, header: Path, text: str, flags: list[str]) -> Path:
    """`header` holding `text`, and its .gch compiled with `flags` (each written to a temp name,
    then renamed; both kept when they exist). Raises RuntimeError with the compiler's message."""
    gch = header.with_name(header.name + ".gch")
    if header.exists() and gch.exists():
        return header
    atomic_write_text(header, text)
    with atomic_path(gch) as tmp:
        cmd = [cc_path, "-x", "c++-header", str(header), "-o", str(tmp), *flags]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"precompiling {header} took over {BUILD_TIMEOUT_S} s") from exc
        if proc.returncode != 0 or not tmp.stat().st_size:
            raise RuntimeError(f"{cc_path} could not precompile {header}:\n{proc.stderr[-2000:]}")
    return header


WRAPPER = """#!/bin/sh
# {cc} with the precompiled kernel header (pipeline/jt_pch.py), except for Jittor's oneDNN
# kernels (mkl_*: their code comes out laid out differently with it; a handful per network).
# Jittor gives some kernels of identical source text different names (a demo training step
# compiles 299 kernels from 256 distinct sources): the compile of such a kernel to assembly
# (asm_tuner's `X_op.cc ... -S -o X_op.post.s`) reuses the assembly of the first one, with the
# kernel's name put in for the first one's: the code and data the compiler would write (only
# the debug-information strings can come in another order).
case "$*" in
  *"/mkl_"*) exec "{cc}" "$@" ;;
esac
src=; out=; prev=
for a in "$@"; do
  [ "$prev" = "-o" ] && out=$a
  case "$a" in *_op.cc) src=$a ;; esac
  prev=$a
done
stem=${{src##*/}}; stem=${{stem%.cc}}; dir=${{src%/*}}
plain() {{ exec "{cc}" -include "{header}" "$@"; }}
case "$src" in */*_op.cc) ;; *) plain "$@" ;; esac
case "$out" in *_op.post.s) ;; *) plain "$@" ;; esac
case "$stem" in *[!A-Za-z0-9_]*) plain "$@" ;; esac
command -v sha256sum >/dev/null 2>&1 || plain "$@"
index="{index}"
key=$( {{ printf '%s\\n' "$PWD" "$dir" "$*" | sed "s/$stem/@/g"; cat "$src"; }} | sha256sum | cut -c1-32 )
for hit in "$index/$key".*; do
  old=${{hit##*.}}
  if [ "$old" != "$stem" ] && [ -f "$dir/$old.post.s" ]; then
    if sed "s/$old/$stem/g" "$dir/$old.post.s" > "$out.$$.tmp" && mv "$out.$$.tmp" "$out"; then
      echo "$src" >> "$index/reused.log"
      exit 0
    fi
    rm -f "$out.$$.tmp"
  fi
done
"{cc}" -include "{header}" "$@" || exit $?
mkdir -p "$index" && : > "$index/$key.$stem"
"""


def write_wrapper(cc_path: str, header: Path) -> Path:
    """The compiler wrapper beside `header` (written to a temp name, then renamed); the index of
    the kernels' assembly it reuses is the folder beside it named like it, plus `.asm`."""
    text = WRAPPER.format(cc=cc_path, header=header, index=header.with_name(header.stem + ".asm"))
    return _write_script(header.with_name(header.stem + "-cc"), text)


def _write_script(path: Path, text: str) -> Path:
    """An executable script at `path` holding `text` (to a temp name, then renamed; left as it
    is when it already holds it)."""
    if path.exists() and path.read_text() == text:
        return path
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        tmp.chmod(0o755)
    return path


TUNER = """#!/bin/sh
# Jittor compiles each CPU kernel by running `PYTHON <jittor>/utils/asm_tuner.py --cc_path=CC
# X_op.cc FLAGS -o X_op.so`: a Python process (~0.2 s to start and import jittor_utils) that
# compiles X_op.cc to assembly with -g, applies the `//@begin replace` rewrites the source asks
# for (non-temporal stores, in a few kernels) and assembles and links the result. Most kernels
# ask for none, and their assembly goes through unchanged: for those this script runs the same
# two compiles itself, without debug information (which changes no code; the compile to
# assembly takes 0.31 s instead of 0.46), so a kernel compiles in ~0.4 s instead of ~0.75 s
# (pipeline/jt_pch.py). Any other command goes to {python} as before.
py="{python}"
case "$1" in */asm_tuner.py) ;; *) exec "$py" "$@" ;; esac
case "$2" in --cc_path=*) ;; *) exec "$py" "$@" ;; esac
tuner=$1; cc=${{2#--cc_path=}}
shift 2
slow() {{ exec "$py" "$tuner" "--cc_path=$cc" "$@"; }}
src=$1; out=; prev=
for a in "$@"; do
  [ "$prev" = "-o" ] && out=$a
  prev=$a
done
case "$src" in *_op.cc) ;; *) slow "$@" ;; esac
[ "$out" = "${{src%.cc}}.so" ] && [ -f "$src" ] || slow "$@"
grep -q '@begin' "$src" && slow "$@"
asm=${{src%.cc}}.post.s
# the compile to assembly: asm_tuner's, less -g (its flags less the linker's: -l, -L, -Wl,
# -shared, ...; the output X_op.post.s)
to_asm() {{
  skip=
  for a do
    shift
    if [ -n "$skip" ]; then skip=; continue; fi
    case "$a" in
      -o) skip=1; continue ;;
      -l*|-L*|-Wl,*|-shared|*.lib|*-l|*-L|*-Wl,|*-shared) continue ;;
    esac
    set -- "$@" "$a"
  done
  "$cc" "$@" -S -o "$asm"
}}
to_asm "$@" || exit $?
# asm_tuner's second step: the same command with the assembly in place of the source
shift
exec "$cc" "$asm" "$@"
"""


def write_tuner(python: str, header: Path) -> Path:
    """The kernels' compile driver beside `header` (TUNER; written to a temp name, then renamed),
    which runs Jittor's asm_tuner with `python` where it must."""
    return _write_script(header.with_name(header.stem + "-tuner"), TUNER.format(python=python))


def use_kernel_pch(jt, log=None) -> Path | None:
    """Build (once per Jittor cache) and use the kernels' precompiled header: Jittor's compiler
    becomes a wrapper that adds `-include` it. Returns the header, or None where it is off, not
    applicable, or could not be built (`log` gets why)."""
    if os.environ.get("LANDSCAPE_KERNEL_PCH", "1") == "0" or jt.flags.use_cuda:
        return None
    cc_path, cc_flags = jt.flags.cc_path, jt.flags.cc_flags
    if Path(cc_path).parent.name == PCH_DIR or not _compiler_is_gcc(cc_path):
        return None  # the wrapper already (an earlier call), or not GCC
    key = pch_key(cc_path, cc_flags, jt.__version__)
    try:
        header = build_pch(cc_path, cc_flags, Path(jt.flags.cache_path) / PCH_DIR, key)
        wrapper = write_wrapper(cc_path, header)
    except (OSError, RuntimeError) as exc:
        if log is not None:
            log(f"jittor: kernels compile without a precompiled header ({exc})")
        return None
    jt.flags.cc_path = str(wrapper)
    python = jt.flags.python_path
    if os.environ.get("LANDSCAPE_KERNEL_DIRECT", "1") != "0" and python:
        try:
            jt.flags.python_path = str(write_tuner(python, header))
        except OSError as exc:
            if log is not None:
                log(f"jittor: kernels compile through Jittor's asm_tuner ({exc})")
    return header


# Jittor's core (jittor_core: ~160 C++ files, ~320 CPU s, the longest part of a fresh set-up) is
# compiled at its first import, one g++ process per file, each parsing mostly the same headers:
# ~1.0-1.5 s of a typical file's ~1.2-1.8 s. These are the headers most of those files include
# (Python.h first, as Python asks, and in the pyjt files that include it); `-include` of their
# precompiled header puts them before each file's own includes, whose include guards then skip
# them. Measured on the 157 core files of this machine's build, 2 jobs: 160.7 s -> 107.6 s, 321
# -> 215 CPU s (docs/benchmarks.md).
CORE_INCLUDES = (
    "<Python.h>", '"common.h"', '"var.h"', '"op.h"', '"var_holder.h"', '"pyjt/py_converter.h"',
    '"ops/op_register.h"', '"fused_op.h"', '"executor.h"', '"op_compiler.h"',
)
# a build of at least this many files with one compiler and the same flags is the core (Jittor's
# other builds, the oneDNN and MPI ops, are ~6 files with flags of their own: left as they are)
CORE_MIN_FILES = 24
# beside a core header that the core once failed to compile with (holds the error): not used again
FAILED = ".failed"
# Jittor's compile() writes each object's command as `"CC" "SRC" FLAGS -c -o "OBJ"`
_OBJECT_CMD = re.compile(r'^"(?P<cc>[^"]+)" "(?P<src>[^"]+\.(?:cc|cpp))" (?P<flags>.*) -c -o "[^"]+"$')


_INCLUDED = re.compile(r' -include "([^"]+/core_[0-9a-f]+\.h)"')


def core_header_text(key: str) -> str:
    lines = [f"// Jittor core headers, precompiled (pipeline/jt_pch.py); key {key}"]
    return "\n".join(lines + [f"#include {inc}" for inc in CORE_INCLUDES]) + "\n"


def build_core_pch(cc_path: str, flags: str, folder: Path, key: str) -> Path:
    """folder/core_<key>.h and its .gch, compiled with the core's own flags (the object
    commands' flags); returns the header. Raises RuntimeError when GCC cannot build it."""
    return _precompile(cc_path, folder / f"core_{key}.h", core_header_text(key),
                       shlex.split(flags))


def with_core_pch(cmds: list[str], cache_path: str, version: str, build=None,
                  log=None) -> list[str]:
    """Jittor's object-compile commands, those of the core's build with `-include` of the
    core's precompiled header after the source (`build` makes it, in cache_path/landscape_pch,
    keyed by compiler, flags, Jittor version and the header's includes). Other commands, other
    compilers than GCC, smaller builds, and every command of a group whose header could not be
    built (`log` says why) are returned as they are."""
    build = build or build_core_pch
    groups: dict[tuple[str, str], list[int]] = {}
    for i, cmd in enumerate(cmds):
        m = _OBJECT_CMD.match(cmd)
        if m and _compiler_is_gcc(m["cc"]) and "-include" not in shlex.split(m["flags"]):
            groups.setdefault((m["cc"], m["flags"]), []).append(i)
    out = list(cmds)
    for (cc, flags), members in groups.items():
        if len(members) < CORE_MIN_FILES:
            continue
        key = hashlib.sha256("\n".join([cc, flags, version, *CORE_INCLUDES]).encode()).hexdigest()[:16]
        if (Path(cache_path) / PCH_DIR / f"core_{key}.h{FAILED}").exists():
            continue  # this core did not compile with it once (patch_core_build): as shipped
        try:
            header = build(cc, flags, Path(cache_path) / PCH_DIR, key)
        except (OSError, RuntimeError) as exc:
            if log is not None:
                log(f"jittor: its core compiles without a precompiled header ({exc})")
            continue
        for i in members:
            end = _OBJECT_CMD.match(cmds[i]).end("src") + 1  # after the source's closing quote
            out[i] = f'{cmds[i][:end]} -include "{header}"{cmds[i][end:]}'
    return out


def compile_jobs(total_mem_bytes: float | None, cores: int) -> int:
    """Processes for Jittor's library builds: Jittor's own count (one per 3 GiB of memory, 1 to
    16; 4 where the memory is unknown), at most one per core. Jittor ignores the cores: 8
    processes on this 2-core machine, where the core's build (with its precompiled header) took
    138 s at 8 processes and 108 s at 2 (docs/benchmarks.md)."""
    by_memory = 4 if total_mem_bytes is None else min(16, max(int(total_mem_bytes / 1024**3 // 3), 1))
    return max(1, min(by_memory, cores))


def _start_pool(ju, jobs: int) -> None:
    """Jittor's build pool (`jittor_utils.p`), sized `jobs`, made as Jittor's `run_cmds` makes it
    on its first call (which then uses this one)."""
    import atexit
    import multiprocessing as mp

    daemon = mp.current_process()._config.get("daemon")
    mp.current_process()._config["daemon"] = False  # as Jittor does: a pool from any process
    try:
        ju.p = ju.Pool(jobs, initializer=ju.pool_initializer)
        ju.p.__enter__()
    finally:
        mp.current_process()._config["daemon"] = daemon
    ju.pool_size = jobs
    atexit.register(ju.pool_cleanup)


def patch_core_build(log=None, cores: int | None = None) -> bool:
    """Before `import jittor`: Jittor's builds (`jittor_utils.run_cmds`, which compiles a
    library's objects in a process pool, each through Jittor's command cache) get the core's
    precompiled header (`with_core_pch`), and a pool of at most `cores` processes
    (`compile_jobs`). The cache keys on each object's command, so a core compiled without the
    header is compiled once more with it, never mixed up; with it, later imports find every
    object up to date. Returns whether the patch is in place. `LANDSCAPE_CORE_PCH=0` leaves
    Jittor's builds as they ship."""
    if os.environ.get("LANDSCAPE_CORE_PCH", "1") == "0":
        return False
    import jittor_utils as ju

    if getattr(ju.run_cmds, "landscape_core_pch", False):
        return True
    shipped = ju.run_cmds
    version = ju.get_jittor_version()

    def run_cmds(cmds, cache_path, jittor_path, msg="run_cmds"):
        if ju.pool_size == 0 and cores and os.name != "nt":
            try:
                memory = float(ju.get_total_mem())
            except (ValueError, OSError):
                memory = None
            _start_pool(ju, compile_jobs(memory, cores))
        cmds = list(cmds)
        ours = with_core_pch(cmds, cache_path, version, log=log)
        if ours == cmds:
            return shipped(cmds, cache_path, jittor_path, msg)
        try:
            return shipped(ours, cache_path, jittor_path, msg)
        except Exception as exc:  # noqa: BLE001 - Jittor raises its compile errors as Exception
            # a file that does not compile with the header (another Jittor, another compiler):
            # the build as Jittor ships it, whose own error stands if that fails too; the header
            # is marked, so later imports do not try it again
            if log is not None:
                log(f"jittor: its core did not compile with the precompiled header; compiling it"
                    f" without (LANDSCAPE_CORE_PCH=0 skips the try): {str(exc)[-600:]}")
            for header in {m.group(1) for c in ours for m in [_INCLUDED.search(c)] if m}:
                try:
                    atomic_write_text(Path(header + FAILED), f"{exc}\n")
                except OSError:
                    pass
            return shipped(cmds, cache_path, jittor_path, msg)

    run_cmds.landscape_core_pch = True
    ju.run_cmds = run_cmds
    return True
