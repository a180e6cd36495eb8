"""evaluate, video, plot and Keras export, run as a user would."""
import importlib.util
import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, needs, run_mpi, run_serial, write_config
from mpi_es.rundir import runlog

pytestmark = pytest.mark.mpi


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    """A few generations of InvertedPendulum: snapshots with observation statistics."""
    base = tmp_path_factory.mktemp("ip")
    out = base / "run"
    proc = run_mpi(2, "jobs/inverted_pendulum.yaml", "--out-dir", str(out),
                   "--set", "stop.generations=6", "--set", "snapshot_freq=3")
    assert proc.returncode == 0, proc.stderr
    return out


def test_plot_writes_into_the_run_directory_by_default(pendulum_run):
    proc = run_serial("plot", str(pendulum_run))
    assert proc.returncode == 0, proc.stderr
    assert (pendulum_run / "curve.png").stat().st_size > 1000
    assert f"wrote {pendulum_run / 'curve.png'}" in proc.stdout


def test_evaluate_serial_and_parallel_agree(pendulum_run):
    snap = pendulum_run / "snapshots" / "snapshot_00006.h5"
    serial = run_serial("evaluate", str(snap), "--episodes", "5", "--seed", "3", "--json")
    assert serial.returncode == 0, serial.stderr
    parallel = run_mpi(2, "evaluate", str(snap), "--episodes", "5", "--seed", "3", "--json")
    assert parallel.returncode == 0, parallel.stderr
    a, b = json.loads(serial.stdout), json.loads(parallel.stdout)
    assert a["returns"] == b["returns"] and len(a["returns"]) == 5
    assert a["generation"] == 6
    assert a["return_min"] <= a["return_mean"] <= a["return_max"]
    assert a["return_std"] == pytest.approx(np.std(a["returns"]))
    text = run_serial("evaluate", str(snap), "--episodes", "2")
    assert "return  mean" in text.stdout and "length  mean" in text.stdout
    other_seed = json.loads(run_serial("evaluate", str(snap), "--episodes", "5", "--seed", "4",
                                       "--json").stdout)
    assert other_seed["returns"] != a["returns"]


def test_evaluate_refuses_bad_input(pendulum_run, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("nope")
    proc = run_mpi(2, "evaluate", str(bad))
    assert proc.returncode == 2 and proc.stderr.count("not a readable HDF5 checkpoint") == 1
    proc = run_serial("evaluate", str(pendulum_run / "checkpoint.h5"), "--video", "x.avi")
    assert proc.returncode == 2 and "must end in .mp4 or .gif" in proc.stderr
    proc = run_mpi(2, "evaluate", str(pendulum_run / "checkpoint.h5"), "--video", "x.gif",
                   "--camera", "nope")
    assert proc.returncode == 2 and proc.stderr.count("has cameras none") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_video_is_written_and_decodes(pendulum_run, tmp_path, suffix):
    import imageio.v3 as iio
    snap = pendulum_run / "snapshots" / "snapshot_00003.h5"
    video = tmp_path / f"clip{suffix}"
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    proc = run_serial("evaluate", str(snap), "--episodes", "1", "--json", "--video", str(video),
                      "--width", "160", "--height", "120", timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    frames = iio.imread(video, index=None)
    # one frame after the reset and one per step
    assert frames.shape[0] == result["length_max"] + 1      # the one episode's length
    assert frames.shape[1:3] == (120, 160)
    assert result["video"]["frames"] == frames.shape[0]
    assert frames.std() > 5                       # a rendered scene, not a blank image


@needs("matplotlib", "the plot extra")
def test_plot_overlays_runs_into_a_png(pendulum_run, tmp_path):
    other = tmp_path / "other"
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 3})
    assert run_mpi(1, str(cfg), "--out-dir", str(other)).returncode == 0
    png = tmp_path / "curve.png"
    for axis in ("generation", "timesteps", "seconds"):
        proc = run_serial("plot", str(pendulum_run), str(other), "-o", str(png), "--x", axis)
        assert proc.returncode == 0, proc.stderr
    from matplotlib.image import imread
    image = imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 500
    colours = np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert image[..., :3].std() > 0.05 and len(colours) > 50
    missing = run_serial("plot", str(tmp_path / "nowhere"), "-o", str(png))
    assert missing.returncode == 2 and "no log.csv" in missing.stderr


@needs("matplotlib", "the plot extra")
def test_plot_marks_the_eval_return_checks_apart_from_evaluation_episodes(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpi_es.commands.plot import draw
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "c.yaml", eval_prob=0.5, stop={
        "generations": 4, "eval_return": 1e9, "eval_every": 2, "eval_episodes": 3})
    assert run_mpi(1, str(cfg), "--out-dir", str(out)).returncode == 0
    checked = [r for r in runlog.read(out / "log.csv")
               if r.get("TargetEvalMean") not in (None, "", "nan")]
    assert [r["Generation"] for r in checked] == ["2", "4"]
    logged = [(float(r["TimestepsSoFar"]), float(r["TargetEvalMean"])) for r in checked]
    fig, ax = plt.subplots()
    draw(ax, [str(out)], "timesteps")
    marked = {c.get_label(): c.get_offsets().tolist() for c in ax.collections
              if c.get_label().startswith("run (")}
    plt.close(fig)
    assert marked["run (3-episode check)"] == [list(p) for p in logged]
    assert "run (evaluation)" in marked
    assert all(p not in marked["run (evaluation)"] for p in marked["run (3-episode check)"])


@needs("tensorflow", "the keras extra")
@pytest.mark.parametrize("variant", [
    {},
    {"optimizations": {"discretize_actions": True}, "model": {"ac_bins": 7}},
    {"optimizations": {"observation_normalization": False}, "model": {"nonlin_type": "lrelu"}},
    {"model": {"nonlin_type": "elu", "hidden_dims": [8, 5]}},
], ids=["tanh-normalized", "discrete", "lrelu-raw-obs", "elu"])
def test_keras_export_matches_numpy_policy(tmp_path, variant):
    overrides = {"stop": {"generations": 2}, "calc_obstat_prob": 0.5, **variant}
    if "model" in variant:
        overrides["model"] = {"hidden_dims": [8], "ac_noise_std": 0.05,
                              "nn_optimizer_args": {"stepsize": 0.05}, **variant["model"]}
    cfg = write_config(tmp_path / "c.yaml", **overrides)
    out = tmp_path / "run"
    assert run_mpi(1, str(cfg), "--out-dir", str(out)).returncode == 0
    model_path = tmp_path / "policy.keras"
    # the env module is named only inside the checkpoint: refused until the user allows it
    refused = run_serial("export", str(out / "checkpoint.h5"), "-o", str(model_path))
    assert refused.returncode == 2 and "--allow-import toy_envs" in refused.stderr
    proc = run_serial("export", str(out), "-o", str(model_path),      # a run directory too
                      "--allow-import", "toy_envs", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "differ from the NumPy policy's by at most" in proc.stdout

    from mpi_es.commands import evaluate, export
    model = export.load_model(model_path)
    snapshot = evaluate.load_snapshot(out / "checkpoint.h5", ["toy_envs"])
    observations = export.sample_observations(snapshot, 100, seed=7)
    assert export.max_action_difference(snapshot, model, observations) <= 1e-5


def test_video_of_a_classic_control_env(tmp_path):
    import imageio.v3 as iio
    cfg = write_config(tmp_path / "c.yaml", env_id="CartPole-v1", stop={"generations": 1},
                       model={"hidden_dims": [4], "ac_noise_std": 0})
    out = tmp_path / "run"
    assert run_mpi(1, str(cfg), "--out-dir", str(out)).returncode == 0
    video = tmp_path / "cartpole.mp4"        # (a gif merges identical frames)
    proc = run_serial("evaluate", str(out), "--episodes", "1", "--json", "--video", str(video),
                      timeout=300)
    assert proc.returncode == 0, proc.stderr
    frames = iio.imread(video, index=None)
    assert frames.shape[0] == json.loads(proc.stdout)["length_max"] + 1
    assert frames.std() > 5 and "Traceback" not in proc.stderr


def test_missing_offscreen_gl_is_one_line_naming_the_packages(monkeypatch):
    from mpi_es.commands import video
    from mpi_es.config import ConfigError
    # setenv first, so that the teardown restores them whatever pick_gl sets
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(video, "gl_works", lambda backend: False)
    with pytest.raises(ConfigError) as err:
        video.pick_gl()
    assert "libegl1 libegl-mesa0" in str(err.value) and "libosmesa6" in str(err.value)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(video, "gl_works", lambda backend: backend == "osmesa")
    assert video.pick_gl() == "osmesa"


def test_offscreen_gl_is_picked_by_itself():
    """EGL, else OSMesa: whichever this machine has renders MuJoCo without MUJOCO_GL set."""
    from mpi_es.commands import video
    assert video.gl_works("egl") or video.gl_works("osmesa")


@needs("tensorboardX", "the tensorboard extra")
def test_tensorboard_scalars_append_across_a_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 3}, log={"tensorboard": True})
    out = tmp_path / "run"
    assert run_mpi(2, str(cfg), "--out-dir", str(out)).returncode == 0
    # a kill after generation 3's row but before its checkpoint: the resume repeats it
    from mpi_es.rundir import checkpoint
    import shutil
    shutil.copy(out / "snapshots" / "snapshot_00002.h5", out / "checkpoint.h5")
    assert run_mpi(2, str(cfg), "--out-dir", str(out),
                   "--set", "stop.generations=5").returncode == 0
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    steps = [e.step for e in events.Scalars("GenRewMean")]
    assert steps == [1, 2, 3, 4, 5]
    rows = runlog.read(out / "log.csv")
    assert [e.value for e in events.Scalars("GenRewMean")] == pytest.approx(
        [float(r["GenRewMean"]) for r in rows])
    assert {"TimestepsSoFar", "EvalGenRewardMean", "TimeElapsed"} <= set(events.Tags()["scalars"])
    assert checkpoint.load(out / "checkpoint.h5").state.generation == 5



def test_plot_band_stays_inside_the_observed_returns():
    from mpi_es.commands.plot import band
    low, high = band(np.array([0.0, 10.0, 3.0]), np.array([50.0, 1.0, 1.0]),
                     np.array([-5.0, 9.5, np.nan]), np.array([20.0, 10.5, np.nan]))
    assert low.tolist() == [-5.0, 9.5, 2.0] and high.tolist() == [20.0, 10.5, 4.0]


def load_paper_table():
    spec = importlib.util.spec_from_file_location("paper_table",
                                                  REPO / "benchmarks" / "paper_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    return table


def test_paper_table_counts_steps_to_the_ten_episode_checks_only():
    table = load_paper_table()
    rows = [{"EvalGenRewardMean": "500", "TargetEvalMean": "", "TimestepsSoFar": "10"},
            {"EvalGenRewardMean": "nan", "TargetEvalMean": "450", "TimestepsSoFar": "20"},
            {"EvalGenRewardMean": "300", "TargetEvalMean": "510", "TimestepsSoFar": "30"}]
    assert table.steps_to_threshold(rows, 500) == 30
    # a generation's single evaluation episode (EvalGenRewardMean) never counts
    older = [{k: v for k, v in r.items() if k != "TargetEvalMean"} for r in rows]
    assert table.steps_to_threshold(older, 500) is None
    assert table.steps_to_threshold(rows, 600) is None
    assert table.finished(rows, budget=30, threshold=500)          # reached its budget
    assert table.finished(rows, budget=1e6, threshold=500)         # its last check passed
    assert not table.finished(rows[:2], budget=1e6, threshold=500)  # stopped before its end
    assert not table.finished([], budget=1e6, threshold=500)        # stopped before its first


def test_a_table_keeps_the_rows_of_tasks_whose_runs_it_does_not_have(tmp_path, monkeypatch):
    """Run directories do not outlive a machine: the table is made from the kept runs
    (docs/data/...), and a task with none keeps its current row, marked as earlier runs."""
    table = load_paper_table()
    monkeypatch.setattr(table, "DATA", tmp_path / "data")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "paper_table.md").write_text(
        "# old\n\n| task | x |\n|---|---|\n"
        "| Hopper | 3403.46 | 3.16e+07 | 3.16e+07 | 16.23M | 9.13M | 3408.2 | | yes | | 1 |\n"
        "| Swimmer | 128.25 | 1.39e+06 | 1.39e+06 | not run yet | | | | | | |\n")
    table.report("es", tmp_path / "runs", [0, 1, 2], docs)
    text = (docs / "paper_table.md").read_text()
    assert f"| Hopper{table.EARLIER} | 3403.46 | 3.16e+07 | 3.16e+07 | 16.23M |" in text
    assert "| Swimmer | 128.25 | 1.39e+06 | 1.39e+06 | not run yet |" in text
    assert "| Walker2d | 3830.03 | 3.79e+07 | 3.79e+07 | not run yet |" in text
    table.report("es", tmp_path / "runs", [0, 1, 2], docs)      # a second pass marks once
    assert (docs / "paper_table.md").read_text() == text


def test_a_table_made_after_training_one_seed_counts_every_kept_seed(tmp_path, monkeypatch):
    """The long-run queue trains one seed a call; the table that call writes still has the
    seeds kept before it (it once showed only the seed just trained)."""
    table = load_paper_table()
    monkeypatch.setattr(table, "DATA", tmp_path / "data")
    monkeypatch.setattr(table, "plot", lambda *args: None)
    for seed, (final, check) in {0: (4401.5, "4412"), 2: (1969.5, "2000")}.items():
        out = tmp_path / "data" / "ars" / "walker2d" / f"seed{seed}"
        out.mkdir(parents=True)
        (out / "eval.json").write_text(json.dumps({"return_mean": final}))
        (out / "log.csv").write_text("Generation,TimestepsSoFar,TargetEvalMean,UniqueWorkers\n"
                                     f"1,1000000,{check},1\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    table.report("ars", tmp_path / "runs", [1], docs)
    text = (docs / "ars_table.md").read_text()
    assert "--suite ars --ranks R --seeds 0 1 2`" in text
    row = next(line for line in text.splitlines() if line.startswith("| Walker2d |"))
    assert "| 1.00M, not reached | 3185.5 | 4401.5, 1969.5 | no (2 seeds) |" in row


@pytest.mark.mpi
def test_keep_run_keeps_a_finished_job_once(tmp_path):
    """benchmarks/keep_run.py: the long runs without a table driver are kept in docs/data the
    moment they finish (evaluated, benched, never the checkpoint), and not trained again."""
    from conftest import run_env
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 2})
    out, kept = tmp_path / "runs" / "seed0", tmp_path / "kept" / "seed0"
    cmd = [sys.executable, str(REPO / "benchmarks" / "keep_run.py"), str(cfg), "--out", str(out),
           "--keep", str(kept), "--set", "seed=4"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=run_env(), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(p.name for p in kept.iterdir()) == ["bench.json", "config.yaml", "eval.json",
                                                     "log.csv"]
    assert len(runlog.read(kept / "log.csv")) == 2
    assert json.loads((kept / "eval.json").read_text())["episodes"] == 10
    assert json.loads((kept / "bench.json").read_text())["ranks"] == 2
    assert "seed: 4" in (kept / "config.yaml").read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, env=run_env(), timeout=300)
    assert again.returncode == 0 and f"kept already: {kept}" in again.stdout
    assert (out.parent / "seed0.out").read_text().count("mpi_es: ") == 1     # trained once


def test_every_shipped_job_config_is_valid():
    from mpi_es import config
    jobs = sorted((REPO / "jobs").rglob("*.yaml"))
    assert len(jobs) >= 20
    for job in jobs:
        config.load(job)           # raises ConfigError naming the file and the key


def test_paper_suites_stop_at_the_thresholds_their_tables_report():
    """Every job of the tables stops at the first 10-episode check that reaches the threshold
    its table measures against (Table 1 counts steps to that score), so all rows count alike."""
    from mpi_es import config
    table = load_paper_table()
    for suite in table.SUITES.values():
        for stem, threshold, _ in suite["tasks"].values():
            cfg = config.load(REPO / suite["jobs"] / f"{stem}.yaml")
            assert cfg.stop.eval_return == threshold, (suite["jobs"], stem)
            assert cfg.stop.eval_episodes == 10, (suite["jobs"], stem)


def test_the_common_target_is_the_highest_return_every_configuration_reaches(tmp_path,
                                                                             monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import time_to_score

    def run(name, checks):
        out = tmp_path / name
        out.mkdir()
        rows = ["Generation,TimestepsSoFar,TargetEvalMean"]
        rows += [f"{g + 1},{(g + 1) * 1000},{c}" for g, c in enumerate(checks)]
        (out / "log.csv").write_text("\n".join(rows) + "\n")
        return out
    configs = [("a", [run("a0", ["", "2480.5", "2100"]), run("a1", ["1500", "", "nan"])]),
               ("b", [run("b0", ["2900", "3350"]), run("b1", ["3100", ""])])]
    # a: median of its seeds' best checks (2480.5, 1500) is 1990.25; b: 3225
    assert time_to_score.common_target(configs) == 1900.0


def test_predictions_beyond_one_node_pay_a_fabric_latency_per_claim(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import time_to_score
    from mpi_es.commands import scaling
    monkeypatch.setattr(scaling, "update_seconds_per_rank", lambda *a, **k: 0.0)
    measured = {"num_params": 100, "allgather_latency_s": 0.0, "allgather_bytes_per_s": 1e15,
                "slot_seconds": [1e-3] * 8, "claim_s": 1e-6}
    config = {"optimizations": {"mirrored_sampling": False}, "population_size": 128}
    one_node, _ = time_to_score.predicted_seconds(config, measured, 64)
    two_nodes, _ = time_to_score.predicted_seconds(config, measured, 128)
    assert one_node == pytest.approx(2 * 1e-3 + 3 * 1e-6, rel=1e-6)      # 2 slots, 3 claims
    assert two_nodes == pytest.approx(1e-3 + 2 * scaling.DEFAULT_LATENCY_S, rel=1e-6)


def test_time_to_score_counts_each_check_as_rounds_of_its_mean_episode(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import time_to_score
    header = ("Generation,GenLenMean,EvalGenLengthMean,EvalGenCount,TimestepsThisGen,"
              "TargetEvalMean").split(",")
    rows = [dict(zip(header, values)) for values in (
        ("1", "50.0", "nan", "0", "5000", ""),                 # 100 episodes, no check
        ("2", "60.0", "70.0", "1", "6070", ""),                # plus one evaluation episode
        ("3", "80.0", "90.0", "2", "8680", "1234.5"),          # 2 evaluations, a check
        ("4", "80.0", "nan", "0", "12000", "2345.6"))]         # a check alone
    assert [time_to_score.check_steps(r, population=100) for r in rows] == [0, 0, 500, 4000]
    config = {"optimizations": {"mirrored_sampling": True}, "population_size": 100,
              "stop": {"eval_episodes": 10}}
    measured = {"slot_seconds_mean": 0.4, "episode_length_mean": 100.0}     # 2 ms a step
    assert time_to_score.seconds_per_step(config, measured) == pytest.approx(2e-3)
    # 10 episodes: on 4 ranks 3 after one another, from 10 ranks on one
    per_step = {n: time_to_score.check_seconds_per_step(config, measured, n) for n in (4, 10, 64)}
    assert per_step == pytest.approx({4: 3 * 2e-3 / 10, 10: 2e-3 / 10, 64: 2e-3 / 10})
    # generations 1-3 of 10 s at the bench's length 100, and the check of generation 3:
    # 500 steps, 50 a episode, 3 rounds of 50 steps at 2 ms
    minutes = time_to_score.minutes_to(rows, 3, 10.0, 100.0, per_step[4], population=100)
    assert minutes * 60 == pytest.approx(10 * (0.5 + 0.6 + 0.8) + 3 * 50 * 2e-3)
    assert time_to_score.minutes_to(rows, 3, 10.0, 100.0) * 60 == pytest.approx(19.0)


def test_length_scaling_compares_a_snapshots_own_generation_with_the_scaled_final(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import length_scaling
    from mpi_es.commands import scaling
    monkeypatch.setattr(scaling, "update_seconds_per_rank", lambda *a, **k: 0.0)
    config = {"optimizations": {"mirrored_sampling": False}, "population_size": 64}
    link = {"num_params": 10, "allgather_latency_s": 0.0, "allgather_bytes_per_s": 1e15,
            "claim_s": 0.0}
    tail = [1.0] * 7 + [8.0]                              # one slot in 8 runs 8x as long
    final = {**link, "slot_seconds": tail, "episode_length_mean": 100.0}
    same_shape = {**link, "slot_seconds": [s / 4 for s in tail], "episode_length_mean": 25.0}
    rows = length_scaling.compare(config, final, {"g": same_shape}, (4, 64))["g"]
    assert rows["4"]["ratio"] == pytest.approx(1.0) and rows["64"]["ratio"] == pytest.approx(1.0)
    # the same mean but no long episodes: at 64 ranks (one slot each) the longest slot decides
    even = {**link, "slot_seconds": [sum(tail) / 32] * 8, "episode_length_mean": 25.0}
    rows = length_scaling.compare(config, final, {"g": even}, (64,))["g"]
    assert rows["64"]["ratio"] < 0.5 and rows["64"]["own_s"] == pytest.approx(15 / 32)


@pytest.mark.mpi
def test_time_to_score_predicts_from_a_kept_run_without_its_checkpoint(tmp_path, monkeypatch):
    """A finished run is benched, then only its log, config and bench.json are kept (the
    checkpoint stays behind with the machine); the prediction is made from those."""
    from conftest import run_env
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import paper_table
    import time_to_score
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 4, "eval_return": -1e9,
                                                  "eval_every": 2})
    run = tmp_path / "runs" / "seed0"
    assert run_mpi(2, str(cfg), "--out-dir", str(run)).returncode == 0
    for key, value in run_env().items():         # toy_envs on the path, as run_mpi has it
        monkeypatch.setenv(key, value)
    paper_table.bench(run, 2)
    kept = tmp_path / "kept" / "seed0"
    paper_table.archive(run, kept)
    assert sorted(p.name for p in kept.iterdir()) == ["bench.json", "config.yaml", "log.csv"]
    result = time_to_score.analyse("toy", [kept], target=-1e9, bench_ranks=2)
    seed = result["per_seed"]["seed0"]
    assert seed["steps"] == int(runlog.read(run / "log.csv")[1]["TimestepsSoFar"])  # check 1
    assert all(seed["minutes"][str(n)] > 0 for n in time_to_score.RANKS)
    assert result["bench"]["ranks"] == 2
    # the page: one section per invocation, kept, the fastest configuration named
    docs = tmp_path / "docs"
    slow = {**result, "label": "slower", "by_ranks": {
        k: {**v, "minutes_median": v["minutes_median"] * 2} for k, v in result["by_ranks"].items()}}
    time_to_score.write_section("toy-study", "Toy to -1e9", [slow, result], -1e9,
                                time_to_score.RANKS, "python benchmarks/time_to_score.py ...",
                                docs, "nothing", None)
    page = (docs / "scaling.md").read_text()
    assert "## Toy to -1e9" in page and "| toy | 20 | 1 |" in page
    assert "- Fastest to -1e+09 at 256 ranks: toy (" in page
    assert (docs / "scaling" / "toy-study.png").stat().st_size > 1000
    assert seed["checks"] == [(int(r["TimestepsSoFar"]), float(r["TargetEvalMean"]))
                              for r in runlog.read(run / "log.csv")
                              if r["TargetEvalMean"] not in ("", "nan")]
    assert len(seed["checks"]) == 1         # the run stops at its first check, generation 2
    assert (docs / "scaling" / "toy-study-curves.png").stat().st_size > 1000
    assert "](scaling/toy-study-curves.png)" in page
    # the headline sections first (SECTION_ORDER), the rest by name
    import population_study
    time_to_score.write_section("ant-population", "Ant", [result], -1e9, (1440,), "cmd", docs,
                                None, None, population_study.describe())
    time_to_score.write_section("another", "Another", [result], -1e9, (1440,), "cmd", docs,
                                None, None)
    page = (docs / "scaling.md").read_text()
    assert page.index("## Toy to -1e9") > page.index("## Another") > page.index("## Ant\n") > 0
    assert "| minutes at 1440 ranks (efficiency) |\n" in page[page.index("## Another"):]
    (docs / "data" / "scaling" / "stray.json").write_text("{}")     # not a section: named
    with pytest.raises(SystemExit, match="stray.json is not a section of the scaling page"):
        time_to_score.write_page(docs)
    ant = page[page.index("## Ant\n"):page.index("## Another")]     # the study says its setup
    assert "pop640: population 640, Adam step 0.02, a check every 2 generations" in ant
    assert "pop1280 (population 1280, Adam step 0.04) was left out: " in ant
    assert "left out" not in page[page.index("## Another"):]


def test_side_by_side_times_every_generation_but_the_first_and_tables_the_lead(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import side_by_side
    rate = side_by_side.mpi_es_rate("InvertedPendulum-v5", population=4, generations=3, ranks=1)
    # the first generation (start-up) is left out: 2 generations of 4 episodes
    assert 2 * 4 <= rate["steps"] <= 2 * 4 * 1000 and rate["seconds"] > 0
    results = {"Ant-v5": {"mpi_es": {"steps_per_s": 4000.0},
                          "EvoTorch GymNE": {"steps_per_s": 2000.0}}}
    assert side_by_side.markdown_table(results)[2] == "| Ant-v5 | 4,000 | 2,000 (2.00x) |"


@pytest.mark.parametrize("vbn", [False, True])
def test_stacked_cnns_score_each_observation_as_its_own_network(vbn, monkeypatch):
    """benchmarks/cnn_lanes.py times CNN lanes as one stacked product per layer; its figures
    mean something only if each row is exactly what that network alone computes."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import cnn_lanes
    from mpi_es.policies.cnn import CnnPolicy, CnnSpec
    rng = np.random.default_rng(3)
    spec = CnnSpec((2, 42, 46), num_actions=4, vbn=vbn)
    reference = rng.integers(0, 256, (6, 2, 42, 46), dtype=np.uint8) if vbn else None
    policies = [CnnPolicy(spec, spec.init_theta(rng)
                          + rng.normal(0, 0.3, spec.num_params).astype(np.float32), reference)
                for _ in range(3)]
    obs = rng.integers(0, 256, (3, 2, 42, 46), dtype=np.uint8)
    stacked = cnn_lanes.StackedCnns(policies).scores(obs)
    for k, policy in enumerate(policies):
        np.testing.assert_array_equal(stacked[k], policy.scores(obs[k]))
    assert not np.array_equal(stacked[0], stacked[1])


def test_cnn_lanes_measures_pong(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import cnn_lanes
    cnn_lanes.main([str(REPO / "jobs" / "pong.yaml"), "--lanes", "2", "--rounds", "3",
                    "--passes", "1", "--set", "model.vbn_batch=8"])
    out = capsys.readouterr().out
    assert "PongNoFrameskip-v4, CNN, 2 lanes" in out
    assert "stacked scores bit-identical to each network's own: yes" in out
    for line in ("env step alone", "forward pass, one network at a time", "play, 2 networks"):
        assert line in out


def test_long_runs_takes_each_command_once_in_order_and_skips_what_is_done(tmp_path,
                                                                          monkeypatch):
    """Two workers share the queue: every command runs exactly once, in the file's order, a
    line added while the queue runs is run too, a failing command does not stop the others and
    is tried again next time, and a second start skips what exited 0."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import long_runs
    log = tmp_path / "log"

    def line(name, code="", rc=0):
        script = (f"import sys, time; open({str(log)!r}, 'a').write('{name}\\n'); {code}"
                  f"sys.exit({rc})")
        return f"python -c {shlex.quote(script)}"
    queue = tmp_path / "q.txt"
    added = line("e") + "\n"            # b adds e to the file while the queue runs
    queue.write_text("\n".join([
        "# a comment", "", line("a", "time.sleep(2); "),
        line("b", f"open({str(queue)!r}, 'a').write({added!r}); "), line("bad", rc=3),
        line("c"), line("d")]) + "\n")
    runs = tmp_path / "runs"
    assert long_runs.main(["--file", str(queue), "--runs", str(runs), "--workers", "2"]) == 1
    started = log.read_text().split()
    assert sorted(started) == ["a", "b", "bad", "c", "d", "e"]
    assert started.index("b") < started.index("c") < started.index("d")   # a holds a worker
    assert len(list((runs / "queue").glob("*.done"))) == 5
    outputs = list((runs / "queue").glob("*.out"))
    assert len(outputs) == 6 and all("=== " in out.read_text() for out in outputs)
    log.unlink()
    assert long_runs.main(["--file", str(queue), "--runs", str(runs), "--workers", "2"]) == 1
    assert log.read_text().split() == ["bad"]


def test_long_runs_refuses_a_second_queue_on_the_same_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import fcntl
    import long_runs
    state = tmp_path / "queue"
    state.mkdir()
    with open(state / "queue.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        queue = tmp_path / "q.txt"
        queue.write_text("python -c pass\n")
        assert long_runs.main(["--file", str(queue), "--runs", str(tmp_path)]) == 1
    assert "another queue is running" in capsys.readouterr().err


def test_long_runs_stops_its_commands_on_sigterm_and_leaves_them_not_done(tmp_path):
    import signal
    import subprocess
    import time
    pid_file = tmp_path / "pid"
    script = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
              f"time.sleep(60)")
    queue = tmp_path / "q.txt"
    queue.write_text(f"python -c {shlex.quote(script)}\n")
    runs = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "long_runs.py"),
                                "--file", str(queue), "--runs", str(runs)],
                               stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    child = int(pid_file.read_text())
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 75
    assert "queue: stopped" in process.stdout.read()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert not list((runs / "queue").glob("*.done"))
