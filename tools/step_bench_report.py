"""The printed and written form of tools/step_bench.py's results: the table line of a row, the
goal verdicts, the profile and parts summaries."""

from __future__ import annotations

GOAL = 0.9  # Jittor / PyTorch step time (issue 11)


HEADER = (f"{'setting':>8} {'size':>8} {'batch':>5} {'thr':>3} | {'jittor s':>8} {'torch s':>8}"
          f" {'J/T':>5} | {'GFLOP':>6} {'peak GF/s':>9} {'J %peak':>7} {'T %peak':>7} | steady")


def table_line(r: dict) -> str:
    steady = f"{'yes' if r['steady'] else 'NO'} ({r['warmup_rounds']} rounds)"
    if "previous_ratio" in r:
        steady += (f"; jittor with the previous ops {r['jittor_previous_s']:.3f} s, J/T {r['previous_ratio']:.2f};"
                   f" pipeline/model/ops.py's are {r['previous_speedup']:.2f}x faster")
    return (f"{r['setting']:>8} {r['size']:>8} {r['batch']:>5} {r['threads']:>3} | {r['jittor_s']:>8.3f}"
            f" {r['torch_s']:>8.3f} {r['ratio']:>5.2f} | {r['conv_gflop_step']:>6.2f}"
            f" {r['machine_conv_gflops']:>9.1f} {r['jittor_conv_share']:>7.1%} {r['torch_conv_share']:>7.1%}"
            f" | {steady}")


def verdicts(rows: list[dict]) -> list[str]:
    """One line per setting: its Jittor/PyTorch ratio at each thread setting (both frameworks at
    the same threads), PASS when every one is within GOAL."""
    out = []
    for name in dict.fromkeys(r["setting"] for r in rows):
        ratios = {r["threads"]: r["ratio"] for r in rows if r["setting"] == name}
        worst = max(ratios.values())
        verdict = "PASS" if worst <= GOAL else "MISS"
        out.append(f"jittor / pytorch step, {name}: " + ", ".join(f"{v:.2f}x at {k} thread(s)"
                   for k, v in ratios.items()) + f" (goal <= {GOAL}x at each) {verdict}")
    return out


def summarize_profile(rows: list[dict], top: int = 40) -> dict:
    """A side's profile rows (op, seconds per step, calls) -> the kernel total, its conv part
    (oneDNN convolutions and their gradients) and the `top` slowest rows."""
    total = sum(x["seconds"] for x in rows)
    conv = sum(x["seconds"] for x in rows if "conv" in x["op"])
    return {"kernel_s": round(total, 4), "conv_s": round(conv, 4), "other_s": round(total - conv, 4),
            "top": [{**x, "seconds": round(x["seconds"], 4)} for x in rows[:top]]}


def print_profile(r: dict, top: int = 12) -> None:
    for fw, p in r.get("profile", {}).items():
        print(f"  {fw} profile ({r['setting']}, {r['threads']} thread(s)): kernels {p['kernel_s']:.3f} s/step"
              f" (conv {p['conv_s']:.3f}, other {p['other_s']:.3f}) of a {r[fw + '_s']:.3f} s step; top:")
        for x in p["top"][:top]:
            print(f"    {x['seconds']:8.4f} {x['seconds'] / max(p['kernel_s'], 1e-9):6.1%} x{x['calls']:<5} {x['op']}")


def print_parts(r: dict) -> None:
    if "parts" in r:
        print(f"  parts ({r['setting']}, {r['threads']} thread(s)), s per step: jittor, torch, J/T")
        for part, v in r["parts"].items():
            print(f"    {part:<18} {v['jittor']:8.4f} {v['torch']:8.4f} {v['jittor'] / max(v['torch'], 1e-9):6.2f}")
