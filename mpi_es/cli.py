"""Command line: `python -m mpi_es [train] CONFIG.yaml [options]` and the other subcommands.

It parses and dispatches; the run lifecycle is training.run, the tools are in commands/."""
from __future__ import annotations

import os

# BLAS threads and kernel: before NumPy is imported (mpi_es.blas says why)
from .blas import pin_blas  # noqa: E402

pin_blas()

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from .distributed.signals import StopRequest  # noqa: E402
from .errors import EXIT_OK, EXIT_USAGE, ConfigError  # noqa: E402

# The train command's stop request: installed first thing, before NumPy and MPI load (this
# module imports neither), so a signal at any moment of a job's life ends in a clean stop.
STOP = StopRequest(verbose=False)


def agreed(world, make):
    """distributed.agreement.agreed, imported when first needed (it loads NumPy and MPI)."""
    from .distributed.agreement import agreed as agree
    return agree(world, make)

SUBCOMMANDS = ("train", "check", "info", "bench", "evaluate", "plot", "export")


class _Parser(argparse.ArgumentParser):
    quiet = False  # True on ranks other than 0: they must not repeat usage text

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message}\n{self.format_usage().rstrip()}")

    def _print_message(self, message, file=None):
        if not _Parser.quiet:
            super()._print_message(message, file)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = _Parser(prog="mpi_es", description="OpenAI Evolution Strategies over MPI.",
                     epilog="`mpi_es CONFIG.yaml [options]` is short for `mpi_es train "
                            "CONFIG.yaml [options]`; launch it under mpiexec or srun, e.g. "
                            "`mpiexec -n 2 python -m mpi_es jobs/inverted_pendulum.yaml`.")
    parser.add_argument("--version", action="version", version=f"mpi_es {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = sub.choices
    train = sub.add_parser("train", help="train a policy (the default command)",
                           description="Train a policy. Launch under mpiexec/srun: every rank "
                                       "is a worker; rank 0 also updates and writes OUT_DIR.")
    check = sub.add_parser("check", help="validate a config and show what a job would do",
                           description="Resolve and validate a config, make the env once and "
                                       "print sizes, without training.")
    bench = sub.add_parser("bench", help="measure speed and overheads (run under mpiexec)",
                           description="Measure raw env speed, ES speed, policy forward pass, "
                                       "noise table build and memory, the split of a generation "
                                       "and the update at scale. Writes nothing to out_dir.")
    bench.add_argument("--generations", type=int, default=3, metavar="N",
                       help="ES generations to time (default 3)")
    bench.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    bench.add_argument("--checkpoint", metavar="FILE.h5",
                       help="start from this checkpoint's policy (to time a trained policy's "
                            "episodes) instead of the config's initial one")
    bench.add_argument("--no-keras", action="store_true",
                       help="skip the Keras comparison even when TensorFlow is installed")
    for command in (train, check, bench):
        command.add_argument("config", metavar="CONFIG.yaml")
        command.add_argument("--out-dir", metavar="DIR", help="override out_dir of the config")
        command.add_argument("--set", dest="overrides", action="append", default=[],
                             metavar="KEY=VALUE",
                             help="override a config key, dotted, repeatable "
                                  "(--set model.hidden_dims=[64,64])")
    check.add_argument("--ranks", type=int, metavar="N",
                       help="predict the generation time and efficiency at N ranks (default: "
                            "this launch's), without launching them")
    train.add_argument("--resume", default="auto", metavar="auto|never|PATH",
                       help="auto (default): continue from OUT_DIR/checkpoint.h5 when it exists; "
                            "never: refuse a non-empty out dir; PATH: start from that checkpoint "
                            "or snapshot")
    evaluate = sub.add_parser("evaluate", help="play the noise-free policy of a snapshot",
                              description="Play the noise-free policy of a checkpoint or snapshot "
                                          "(in parallel under mpiexec) and report returns.")
    evaluate.add_argument("file", metavar="SNAPSHOT.h5|RUN_DIR")
    evaluate.add_argument("--episodes", type=int, default=10, metavar="N", help="default 10")
    evaluate.add_argument("--seed", type=int, default=0, metavar="S",
                          help="episode i starts from a reset seed derived from (the run's "
                               "seed, S, i)")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.add_argument("--video", metavar="PATH", help="render episodes to PATH (.mp4 or .gif)")
    evaluate.add_argument("--video-episodes", type=int, default=1, metavar="K",
                          help="episodes in the video (the first K of the evaluation)")
    evaluate.add_argument("--fps", type=int, default=30)
    evaluate.add_argument("--camera", metavar="NAME",
                          help="MuJoCo camera (default: the model's 'track' camera if any)")
    evaluate.add_argument("--width", type=int, default=480)
    evaluate.add_argument("--height", type=int, default=360)
    evaluate.add_argument("--allow-import", action="append", default=[], metavar="MODULE",
                          help="let a checkpoint's `module:Id` env, or its `module:Name` network "
                               "or algorithm, import MODULE (repeatable)")
    plot = sub.add_parser("plot", help="learning curves from the log.csv of runs",
                          description="Draw each run's mean return (with a +-std band), its "
                                      "evaluation episodes (dots) and its stop.eval_return "
                                      "checks (diamonds) against generations, timesteps or "
                                      "seconds, one colour per run (the plot extra).")
    plot.add_argument("runs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("-o", "--output", metavar="PNG",
                      help="the image to write (default: curve.png in the first RUN_DIR)")
    plot.add_argument("--x", choices=("generation", "timesteps", "seconds"),
                      default="generation", help="the x axis (default generation)")
    plot.add_argument("--title", help="the figure's title (default: none)")
    plot.add_argument("--hline", action="append", default=[], metavar="Y[=LABEL]",
                      help="draw a horizontal line (a threshold) at return Y; repeatable")
    export = sub.add_parser("export", help="save a snapshot's policy as a Keras model",
                            description="Write the noise-free MLP policy of a checkpoint, "
                                        "snapshot or run directory as a .keras model (its "
                                        "observation normalization and action head included) "
                                        "and check it against the NumPy policy (the keras "
                                        "extra).")
    export.add_argument("file", metavar="SNAPSHOT.h5|RUN_DIR")
    export.add_argument("-o", "--output", required=True, metavar="MODEL.keras",
                        help="the model file to write (required)")
    export.add_argument("--allow-import", action="append", default=[], metavar="MODULE",
                        help="let a checkpoint's `module:Id` env, or its `module:Name` network "
                        "or algorithm, import MODULE (repeatable)")
    info = sub.add_parser("info", help="show what a checkpoint or snapshot holds",
                          description="Print what a checkpoint, snapshot or run directory "
                                      "holds: generation, counters, library versions and the "
                                      "stored config (every field checked before it is read).")
    info.add_argument("file", metavar="FILE.h5|RUN_DIR")
    info.add_argument("--allow-import", action="append", default=[], metavar="MODULE",
                      help="let a checkpoint's `module:Name` algorithm import MODULE (repeatable)")
    return parser


def normalize_argv(argv: list[str]) -> list[str]:
    """`mpi_es CONFIG.yaml ...` means `mpi_es train CONFIG.yaml ...`."""
    if argv and argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"):
        return ["train", *argv]
    return argv


def load_and_prepare(args, world):
    from .training.run import load_and_prepare as prepare
    return prepare(world, args.config, args.overrides, args.out_dir)


def cmd_train(args, world) -> int:
    from .training import run
    cfg, setup = load_and_prepare(args, world)
    return run.run(cfg, world, setup, resume=args.resume, stop=STOP)


def cmd_check(args, world) -> int:
    from .commands.check import describe, out_dir_problem
    from .rundir.resume import checkpoint_to_resume, load_for_resume

    def ranks_ok():
        if args.ranks is not None and args.ranks < 1:
            raise ConfigError(f"--ranks must be at least 1, got {args.ranks}")

    agreed(world, ranks_ok)
    cfg, setup = load_and_prepare(args, world)

    def resume_compatible():
        # everything the start checks, the resume included (not under the lock: check writes
        # nothing, and a busy out_dir is reported by describe)
        problem = out_dir_problem(cfg)
        if problem:
            raise ConfigError(problem)
        path = checkpoint_to_resume(cfg, "auto")
        if path is not None:
            load_for_resume(path, cfg, setup.spec.num_params)

    agreed(world, lambda: resume_compatible() if world.is_root else None)
    if world.is_root:
        print(describe(cfg, setup, world.size, args.ranks))
        print("config OK")
    return EXIT_OK


def cmd_bench(args, world) -> int:
    from .commands import bench

    def generations_ok():
        if args.generations < 1:
            raise ConfigError("--generations must be at least 1")

    agreed(world, generations_ok)
    cfg, setup = load_and_prepare(args, world)
    state = agreed(world, lambda: bench.start_state(cfg, setup, args.checkpoint))
    result = bench.run(cfg, world, setup, generations=args.generations, keras=not args.no_keras,
                       state=state)
    if world.is_root:
        bench.report(result, args.json)
    return EXIT_OK


def cmd_evaluate(args, world) -> int:
    from .commands import evaluate, video
    args.file = checkpoint_path(args.file)

    def checked():
        if args.episodes < 1 or args.video_episodes < 1 or args.fps < 1:
            raise ConfigError("--episodes, --video-episodes and --fps must be at least 1")
        if args.video:
            video.check_video_path(args.video)
        snapshot = evaluate.load_snapshot(args.file, args.allow_import)
        if args.video and args.camera:
            video.choose_camera(snapshot.cfg.env_id, args.camera, snapshot.cfg.env_kwargs)
        return snapshot

    snapshot = agreed(world, checked)
    evaluate.run(snapshot, args, world, video.record_video)
    return EXIT_OK


def cmd_plot(args, world) -> int:
    from .commands.plot import plot
    output = args.output or str(Path(args.runs[0]) / "curve.png")
    out = agreed(world, lambda: plot(args.runs, output, args.x, args.title, args.hline)
                 if world.is_root else None)
    if world.is_root:
        print(f"wrote {out}")
    return EXIT_OK


def cmd_export(args, world) -> int:
    from .commands import evaluate, export
    args.file = checkpoint_path(args.file)

    def saved():
        if not world.is_root:
            return None
        snapshot = evaluate.load_snapshot(args.file, args.allow_import)
        return snapshot, export.export(snapshot, args.output)

    result = agreed(world, saved)
    if world.is_root:
        snapshot, out = result
        model = export.load_model(out)
        diff = export.max_action_difference(snapshot, model,
                                            export.sample_observations(snapshot))
        print(f"wrote {out}: {model.count_params()} parameters; reloaded, its actions differ "
              f"from the NumPy policy's by at most {diff:.2e} over 100 observations")
    return EXIT_OK


def checkpoint_path(path: str) -> str:
    """A run directory means its checkpoint.h5."""
    return str(Path(path) / "checkpoint.h5") if Path(path).is_dir() else path


def cmd_info(args, world) -> int:
    from .commands.info import describe
    print(agreed(world, lambda: describe(checkpoint_path(args.file), args.allow_import)
                 if world.is_root else ""))
    return EXIT_OK


COMMANDS = {"train": cmd_train, "check": cmd_check, "info": cmd_info, "bench": cmd_bench,
            "evaluate": cmd_evaluate, "plot": cmd_plot, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    argv = normalize_argv(list(sys.argv[1:] if argv is None else argv))
    if argv and argv[0] == "train":
        # From launch on, SIGTERM/SIGINT/SIGUSR1 ask for a clean stop (exit 75), never kill.
        STOP.install()
    from .distributed.agreement import UsageExit
    from .distributed.world import World, install_abort_on_exception
    install_abort_on_exception()
    # `python -m mpi_es` has the current directory on sys.path, the `mpi-es` script does not:
    # both look up a `module:Id` env (or `module:Name` class) there, the same way
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    world = World()
    _Parser.quiet = not world.is_root
    STOP.verbose = world.is_root
    try:
        parser = build_parser()
        try:
            args, extra = parser.parse_known_args(argv)
            if extra:       # the usage of the command they were meant for, not the top level
                (parser.commands.get(args.command) or parser).error(
                    f"unrecognized arguments: {' '.join(extra)}")
        except ConfigError as exc:
            if world.is_root:
                print(f"error: {exc}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        status = COMMANDS[args.command](args, world)
    except UsageExit as exc:
        status = exc.status
    # Not in a `finally`: freeing the shared window is collective, and a rank that is failing
    # must reach the abort hook instead of waiting here for ranks that are not coming.
    world.free()
    return status
