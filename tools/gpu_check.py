"""`make gpu-check`: is this machine ready to train and score, and how fast is it? (<= 8 min)

On a CUDA machine, with nothing installed beyond the project, it runs in turn:
  jittor     Jittor's first use of the device (its kernels compile once, cached after)
  data       the built-in sample dataset at 512x384, preprocessed with the base config
  train      50 training steps of the base config: s/step (steady, after the first log
             window), images/s, peak GPU memory
  generate   100 test maps -> 512x384 JPEGs: images/s
  scorers    SegFormer-B5 and CLIP ViT-L/14 (+ the LAION head's shapes): the real weights
             from weights/ when present, else the same architectures with random weights
  evaluate   `landscape evaluate` of those 100 images with them, FID included: images/s,
             seconds per term, peak GPU memory
  gpu tests  the test suite's `gpu` tests (pytest -m gpu)
and prints one table, also written as json (--out); a failed stage's whole output goes to
<out>_logs/<stage>.log (named in the table). Every stage is a subprocess (`landscape`
commands; the scorers in their own PyTorch process); peak GPU memory is nvidia-smi's used
memory above the stage's start, peak host memory the stage's largest resident set.

`--device cpu --tiny` runs the same stages at toy sizes on a CPU: the script's own test.
A stage that fails skips the ones that need it; a stage that would start past --budget (480 s)
is skipped and says so. Exit status 0 when every stage passed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANDSCAPE = [sys.executable, "-m", "pipeline.cli"]
FID_WEIGHTS = "inception-v3-compat-2015-12-05.pth"
# The tiny model of the tests (tests/pipeline/model_testutil.py) at 48x32, for --tiny.
TINY_MODEL = ["model.num_up=3", "model.ngf=8", "model.max_mult=4", "model.spade_hidden=8",
              "model.z_dim=8", "model.nef=4", "model.encoder_size=16", "model.ndf=8",
              "model.d_layers=2", "model.d_scales=2", "model.edge_nc=4", "generate.batch_size=2"]


# ---------------------------------------------------------------------------- measuring
def gpu_memory_used() -> float | None:
    """MiB used on GPU 0 (nvidia-smi), None without one."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                              "-i", "0"], capture_output=True, text=True, timeout=10)
        return float(out.stdout.strip().splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def gpu_name() -> str:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ""
    out = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version",
                          "--format=csv,noheader", "-i", "0"], capture_output=True, text=True)
    return out.stdout.strip()


def run(cmd: list[str], env: dict, timeout: float, poll_gpu: bool) -> dict:
    """Run `cmd`; {"rc", "seconds", "output" (tail), "gpu_mib" (peak above the start),
    "host_mib" (peak resident set of the process)}. rc 124 when it ran past `timeout`."""
    base = gpu_memory_used() if poll_gpu else None
    peak = [base]
    started = time.perf_counter()
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def poll():
        while not done.wait(0.5):
            used = gpu_memory_used()
            if used is not None:
                peak[0] = max(peak[0] or 0.0, used)

    if base is not None:
        threading.Thread(target=poll, daemon=True).start()
    timer = threading.Timer(max(timeout, 1.0), proc.kill)
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    log.seek(0)
    rc = 124 if seconds >= timeout and proc.returncode < 0 else proc.returncode
    full = log.read()
    return {"rc": rc, "seconds": round(seconds, 2), "output": full[-4000:], "full_output": full,
            "gpu_mib": round(peak[0] - base) if base is not None else None,
            "host_mib": round(usage.ru_maxrss / 1024)}


def steady_step_seconds(rows: list[dict]) -> tuple[float, float]:
    """(seconds to the first log row, steady seconds per step after it) from train_log.csv rows
    (columns step, seconds); the steady part needs two rows after the first."""
    steps = [int(r["step"]) for r in rows]
    secs = [float(r["seconds"]) for r in rows]
    if len(rows) < 2:
        raise ValueError("train_log.csv needs at least 2 rows for a steady step time")
    return secs[0], (secs[-1] - secs[0]) / (steps[-1] - steps[0])


# ---------------------------------------------------------------------------- the stages
class Check:
    """The stages, their shared settings and the rows of the table."""

    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.rows: list[dict] = []
        self.deadline = time.monotonic() + args.budget
        self.env = {**os.environ, "FIX_TORCH_ERROR": "0", "cache_name": "default",
                    "JITTOR_HOME": os.environ.get("JITTOR_HOME", str(ROOT / ".cache")),
                    "log_silent": "1"}
        # one process: no NCCL (with mpicc on the PATH, Jittor's CUDA import otherwise downloads
        # and builds NCCL 2.8.4, which an offline machine cannot)
        self.env.setdefault("use_nccl", "0")
        if args.device == "cpu":
            self.env["nvcc_path"] = ""
        self.sets = [f'device="{args.device}"'] + (TINY_MODEL if args.tiny else [])

    def _sets(self, extra=()) -> list[str]:
        return [a for s in (*self.sets, *extra) for a in ("--set", s)]

    def stage(self, name: str, cmds: list[list[str]], what: str = "") -> list[dict] | None:
        """Run one stage's commands in turn within the budget and add its row (seconds summed);
        their `run` dicts, or None when one failed or the budget is spent."""
        row = {"stage": name, "what": what, "status": "skipped", "seconds": None,
               "rate": None, "gpu_mib": None, "host_mib": None, "note": ""}
        self.rows.append(row)
        total, results = 0.0, []
        for cmd in cmds:
            left = self.deadline - time.monotonic()
            if left < 10:
                row["note"] = f"over the {self.args.budget:.0f} s budget"
                return None
            result = run(cmd, self.env, left, poll_gpu=self.args.device == "cuda")
            results.append(result)
            total += result["seconds"]
            row.update(seconds=round(total, 2), host_mib=max(row["host_mib"] or 0, result["host_mib"]),
                       gpu_mib=result["gpu_mib"] if row["gpu_mib"] is None
                       else max(row["gpu_mib"], result["gpu_mib"] or 0))
            if result["rc"] != 0:
                tail = result["output"].strip().splitlines()
                timed_out = result["rc"] == 124
                row.update(status="TIMED OUT" if timed_out else f"FAILED (exit {result['rc']})",
                           note=f"stopped at the {self.args.budget:.0f} s budget" if timed_out
                           else tail[-1][:200] if tail else "")
                print(f"--- {name}: {' '.join(cmd)}\n{result['output'][-3000:]}", file=sys.stderr)
                row["log"] = str(self.save_log(name, cmd, result["full_output"]))
                print(f"--- {name}: whole output in {row['log']}", file=sys.stderr)
                return None
        row["status"] = "ok"
        return results

    def save_log(self, name: str, cmd: list[str], output: str) -> Path:
        """A failed stage's whole output, beside the report: <out>_logs/<stage>.log."""
        from pipeline.core.atomic import atomic_write_text

        folder = Path(self.args.out).with_name(Path(self.args.out).stem + "_logs")
        path = folder / (name.replace(" ", "_") + ".log")
        atomic_write_text(path, "$ " + " ".join(cmd) + "\n" + output)
        return path

    def jittor(self) -> None:
        code = ("from pipeline.jt_env import setup_jittor; import sys;"
                " jt = setup_jittor(sys.argv[1], log=lambda m: print(m, flush=True));"
                " x = jt.array([1.0, 2.0]); assert float((x * x).sum().item()) == 5.0;"
                " print('jittor', jt.__version__, 'cuda' if jt.flags.use_cuda else 'cpu')")
        results = self.stage("jittor", [[sys.executable, "-c", code, self.args.device]],
                             "first use of the device")
        if results is not None:  # the version, and how CUDA was set up (jt_cuda's line, if any)
            lines = [ln.strip() for ln in results[0]["output"].splitlines()]
            self.rows[-1]["note"] = "; ".join(ln for ln in lines if ln.startswith("jittor"))[:300]

    def gpu_tests(self) -> None:
        paths = self.args.tests or ["tests"]
        result = self.stage("gpu tests", [[sys.executable, "-m", "pytest", "-m", "gpu", "-q",
                                           "-p", "no:cacheprovider", *paths]], "pytest -m gpu")
        if result is None and self.rows[-1]["status"].startswith("FAILED (exit 5)"):
            self.rows[-1].update(status="ok", note="no gpu tests collected")
        elif result is not None:
            self.rows[-1]["note"] = result[-1]["output"].strip().splitlines()[-1][:120]

    def data(self) -> bool:
        a, w = self.args, self.work
        raw_size = ["--width", "128", "--height", "96"] if a.tiny else ["--width", str(a.width),
                                                                      "--height", str(a.height)]
        size = ["data.width=48", "data.height=32"] if a.tiny else [f"data.width={a.width}",
                                                                  f"data.height={a.height}"]
        val = max(2, a.train_images // 8)
        cmds = [[*LANDSCAPE, "sample-data", "--out", str(w / "raw"), "--train",
                 str(a.train_images + val), "--test", str(a.maps), "--seed", "0", "--quiet", *raw_size],
                [*LANDSCAPE, "preprocess", "--data", str(w / "raw"), "--out", str(w / "data"),
                 "--config", a.config, "--quiet",
                 *self._sets([*size, f"data.val_count={val}", "data.workers=0"])]]
        self.sets += size
        return self.stage("data", cmds, f"sample dataset: {a.train_images} training pairs,"
                          f" {a.maps} test maps") is not None

    def train(self) -> bool:
        a, run_dir = self.args, self.work / "run"
        every = max(1, a.steps // 10)
        cmd = [*LANDSCAPE, "train", "--data", str(self.work / "data"), "--out", str(run_dir),
               "--config", a.config, "--quiet",
               *self._sets([f"train.max_steps={a.steps}", f"train.log_every={every}",
                            f"train.sample_every={a.steps}", f"train.checkpoint_every={a.steps}",
                            "train.score_every=0"])]
        if self.stage("train", [cmd], f"{a.steps} steps of {Path(a.config).name}") is None:
            return False
        with open(run_dir / "train_log.csv") as fh:
            rows = list(csv.DictReader(fh))
        first, per_step = steady_step_seconds(rows)
        batch = json.loads((run_dir / "manifest.json").read_text())["counts"].get("processes", 1)
        batch *= int(_config_value(run_dir, "train", "batch_size"))
        self.rows[-1].update(rate=f"{batch / per_step:.2f} images/s", note=(
            f"{per_step:.3f} s/step steady (batch {batch}); first {rows[0]['step']} step(s)"
            f" {first:.1f} s (kernel compilation)"))
        return True

    def generate(self) -> bool:
        out = self.work / "generated"
        cmd = [*LANDSCAPE, "generate", "--run", str(self.work / "run"), "--data",
               str(self.work / "data"), "--split", "test", "--out", str(out), "--quiet",
               "--device", self.args.device]
        if self.stage("generate", [cmd], f"{self.args.maps} test maps") is None:
            return False
        n = len(list(out.glob("*.jpg")))
        self.rows[-1].update(rate=f"{n / self.rows[-1]['seconds']:.2f} images/s",
                             note=f"{n} images, wall time with start-up")
        return n == self.args.maps

    def scorers(self) -> dict | None:
        """The scorer folders (built, or the real ones found in --weights) and the FID weights
        file: evaluate's --set values, or None."""
        a = self.args
        cmds = [[sys.executable, str(ROOT / "tools" / "gpu_check_scorers.py"), "--out",
                 str(self.work / "scorers"), "--weights", a.weights, *(["--tiny"] if a.tiny else [])]]
        fid = Path(a.weights) / FID_WEIGHTS
        if "fid" in a.metrics and not fid.is_file():
            fid = self.work / "weights" / FID_WEIGHTS  # converted offline by `landscape weights`
            cmds.append([*LANDSCAPE, "weights", "--dir", str(fid.parent), "--no-download"])
        results = self.stage("scorers", cmds, "SegFormer-B5, CLIP ViT-L/14" if not a.tiny else "tiny")
        if results is None:
            return None
        made = json.loads(results[0]["output"].strip().splitlines()[-1])
        self.rows[-1]["note"] = ("random weights: " + ", ".join(made["random"])
                                 if made["random"] else "real weights from " + a.weights)
        return {"evaluate.segformer": made["segformer"],
                "evaluate.segformer_class_map": made["segformer_class_map"],
                "evaluate.clip": made["clip"], "evaluate.aesthetic_head": made["aesthetic_head"],
                "evaluate.fid_weights": str(fid)}

    def evaluate(self, scorer_sets: dict) -> bool:
        out, metrics = self.work / "eval", self.args.metrics
        sets = [f'{k}="{v}"' for k, v in scorer_sets.items()]
        sets += [f'evaluate.cache_dir="{self.work / "cache"}"',
                 "evaluate.metrics=[" + ", ".join(f'"{m}"' for m in metrics) + "]"]
        cmd = [*LANDSCAPE, "evaluate", "--generated", str(self.work / "generated"), "--data",
               str(self.work / "data"), "--split", "test", "--out", str(out), "--no-ceiling",
               "--quiet", "--device", self.args.device, "--config", self.args.config,
               *[x for s in sets for x in ("--set", s)]]
        if self.stage("evaluate", [cmd], ", ".join(metrics)) is None:
            return False
        scores = json.loads((out / "scores.json").read_text())
        n = scores["counts"]["images"]
        per_term = {k: v.get("seconds") for k, v in scores["metrics"].items()}
        self.rows[-1].update(rate=f"{n / self.rows[-1]['seconds']:.2f} images/s", note=(
            f"{n} images; s per term: " + ", ".join(f"{k} {v:.1f}" for k, v in per_term.items()
                                                   if v is not None)))
        self.rows[-1]["per_term_seconds"] = per_term
        return n == self.args.maps


def _config_value(run_dir: Path, section: str, key: str):
    import tomllib

    return tomllib.loads((run_dir / "config.resolved.toml").read_text())[section][key]


# ---------------------------------------------------------------------------- the report
COLUMNS = (("stage", 10), ("status", 8), ("seconds", 8), ("rate", 14), ("gpu_mib", 8),
           ("host_mib", 9), ("note", 0))


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table (None -> '-')."""
    heads = {"gpu_mib": "GPU MiB", "host_mib": "host MiB", "rate": "throughput"}
    line = lambda cells: "  ".join(f"{c:<{w}}" if w else c for c, (_, w) in zip(cells, COLUMNS))  # noqa
    out = [line([heads.get(k, k) for k, _ in COLUMNS])]
    for row in rows:
        out.append(line(["-" if row.get(k) is None else str(row[k]) for k, _ in COLUMNS]))
        if row.get("log"):
            out.append(f"{'':10}  whole output: {row['log']}")
    return "\n".join(out)


def _parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--tiny", action="store_true", help="toy sizes (the CPU self-test)")
    p.add_argument("--out", default="artifacts/gpu_check.json", help="json report")
    p.add_argument("--work", default=None, help="working folder (default: a temp folder, removed)")
    p.add_argument("--config", default="configs/base.toml")
    p.add_argument("--weights", default="weights", help="folder of real scorer weights, if any")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--steps", type=int, default=None, help="training steps (50; --tiny 3)")
    p.add_argument("--maps", type=int, default=None, help="maps generated and scored (100; --tiny 4)")
    p.add_argument("--train-images", type=int, default=None, help="(64; --tiny 8)")
    p.add_argument("--metrics", default=None, help="comma list (all four; --tiny: no fid)")
    p.add_argument("--tests", nargs="*", default=None, help="test paths for pytest -m gpu")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for everything")
    args = p.parse_args(argv)
    tiny = args.tiny
    args.steps = args.steps or (3 if tiny else 50)
    args.maps = args.maps or (4 if tiny else 100)
    args.train_images = args.train_images or (8 if tiny else 64)
    default_metrics = "mask-accuracy,color-hist-corr,aesthetic" + ("" if tiny else ",fid")
    args.metrics = (args.metrics or default_metrics).split(",")
    return args


def check(args, work: Path) -> dict:
    """Every stage in order (a failed stage skips those that need it); the report dict."""
    started = time.perf_counter()
    c = Check(args, work)
    c.jittor()
    if c.data() and c.train() and c.generate():
        scorer_sets = c.scorers()
        if scorer_sets is not None:
            c.evaluate(scorer_sets)
    c.gpu_tests()  # last: the measurements first when Jittor's first compilation eats the budget
    return {"device": args.device, "gpu": gpu_name(), "tiny": args.tiny, "config": args.config,
            "size": f"{args.width}x{args.height}" if not args.tiny else "48x32 (tiny)",
            "budget_seconds": args.budget, "seconds": round(time.perf_counter() - started, 1),
            "ok": all(r["status"] == "ok" for r in c.rows), "rows": c.rows}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.device == "cuda" and gpu_memory_used() is None:
        print("gpu-check: no NVIDIA GPU visible (nvidia-smi); try it on a CPU with"
              " `--device cpu --tiny`", file=sys.stderr)
        return 2
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = check(args, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu-check on {report['gpu'] or args.device} ({report['size']}, {report['seconds']} s"
          f" of {args.budget:.0f}):")
    print(table(report["rows"]))
    print(f"{'all stages passed' if report['ok'] else 'SOME STAGES FAILED OR WERE SKIPPED'}; written to {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
