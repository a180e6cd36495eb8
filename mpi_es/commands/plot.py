"""`python -m mpi_es plot RUN_DIR ...`: learning curves from log.csv (needs the `plot` extra)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config.yamlio import parse_yaml
from ..errors import ConfigError
from ..rundir import runlog

X_AXES = {"generation": ("Generation", "generation"),
          "timesteps": ("TimestepsSoFar", "environment steps"),
          "seconds": ("TimeElapsed", "training time (s)")}


def read_run(run_dir: str) -> dict[str, np.ndarray]:
    path = Path(run_dir) / "log.csv"
    if not path.exists():
        raise ConfigError(f"{run_dir}: no log.csv (is this an mpi_es out dir?)")
    rows = runlog.read(path)
    if not rows:
        raise ConfigError(f"{path}: no generations logged yet")
    return {key: np.array([float(r[key]) if r.get(key) not in (None, "", "nan") else np.nan
                           for r in rows])
            for key in ("Generation", "TimestepsSoFar", "TimeElapsed", "GenRewMean",
                        "GenRewStd", "GenRewMin", "GenRewMax", "EvalGenRewardMean",
                        "TargetEvalMean")}


def check_episodes(run_dir: str) -> int | None:
    """Episodes of each stop.eval_return check, from the run's config.yaml (None: unknown)."""
    path = Path(run_dir) / "config.yaml"
    try:
        stop = parse_yaml(path.read_text(), str(path)).get("stop") or {}
        return int(stop["eval_episodes"])
    except (OSError, ConfigError, AttributeError, KeyError, TypeError, ValueError):
        return None


def band(mean: np.ndarray, std: np.ndarray, lowest: np.ndarray, highest: np.ndarray):
    """mean ± std, never outside the returns the generation saw (nan: no bound logged, as in
    logs written before GenRewMin existed)."""
    return np.fmax(mean - std, lowest), np.fmin(mean + std, highest)


def parse_hline(text: str) -> tuple[float, str]:
    """`2385.79=TRPO at 5M steps` -> (2385.79, 'TRPO at 5M steps'); the label is optional."""
    value, _, label = text.partition("=")
    try:
        return float(value), label.strip()
    except ValueError:
        raise ConfigError(f"--hline {text!r}: expected a number, optionally =LABEL") from None


def draw(ax, run_dirs: list[str], x_axis: str = "generation", hlines: list[str] = ()) -> None:
    """Each run's population mean ± std (a band), its evaluation episodes (dots) and its
    stop.eval_return checks (diamonds: the points the tables count), and the lines asked for."""
    column, label = X_AXES[x_axis]
    lines = [parse_hline(h) for h in hlines]
    for run_dir in run_dirs:
        name, run = Path(run_dir).resolve().name, read_run(run_dir)
        x, mean, std = run[column], run["GenRewMean"], run["GenRewStd"]
        line, = ax.plot(x, mean, label=f"{name} (population mean)")
        low, high = band(mean, std, run["GenRewMin"], run["GenRewMax"])
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
        evals = ~np.isnan(run["EvalGenRewardMean"])
        if evals.any():
            ax.scatter(x[evals], run["EvalGenRewardMean"][evals], s=14, color=line.get_color(),
                       edgecolor="black", linewidth=0.4, zorder=3, label=f"{name} (evaluation)")
        checks = ~np.isnan(run["TargetEvalMean"])
        if checks.any():
            episodes = check_episodes(run_dir)
            what = f"{episodes}-episode check" if episodes else "check"
            ax.scatter(x[checks], run["TargetEvalMean"][checks], s=36, marker="D",
                       color=line.get_color(), edgecolor="black", linewidth=0.8, zorder=4,
                       label=f"{name} ({what})")
    for value, text in lines:
        ax.axhline(value, color="black", linestyle="--", linewidth=1,
                   label=text or f"{value:g}")
    ax.set_xlabel(label)
    if x_axis == "generation":
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot(run_dirs: list[str], output: str, x_axis: str = "generation",
         title: str | None = None, hlines: list[str] = ()) -> Path:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plot needs matplotlib: pip install -e \".[plot]\"") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    try:
        draw(ax, run_dirs, x_axis, hlines)
        ax.set_title(title or "mpi_es learning curve" + ("s" if len(run_dirs) > 1 else ""))
        fig.tight_layout()
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out
