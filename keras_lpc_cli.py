"""The `keras-lpc` command: a small entry module outside the `keras_lpc` package.

``import keras_lpc`` imports Keras, which fixes the backend; this module
imports neither, so the command parses its flags first: ``--backend``
chooses the backend whatever ``KERAS_BACKEND`` says, and ``--help`` /
``--version`` answer at once. `keras_lpc.cli` re-exports these names;
``python -m keras_lpc_cli`` runs the command.
TensorFlow's native start-up log lines (absl, oneDNN, CPU features) are
kept out of the demo's output unless ``TF_CPP_MIN_LOG_LEVEL`` is set by the
user.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import re
import sys
import threading
from collections.abc import Iterator


def _version() -> str:
    try:
        return importlib.metadata.version("keras-lpc")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "unknown"


__version__ = _version()

BACKENDS = ("tensorflow", "jax", "torch")

# Native log lines TensorFlow and absl print at start-up whatever
# TF_CPP_MIN_LOG_LEVEL says (they come before absl::InitializeLog): info and
# warning lines in absl's format, and the continuation of the CPU-feature line.
_NATIVE_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] "
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate"
)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` after each flag's help, except for defaults of None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, received {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, received {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, received {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-lpc",
        description="Latent Point Collapse for Keras 3.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        formatter_class=_Formatter,
        help="train a baseline and an LPC model offline and compare them",
        description="Train a baseline and an LPC model on an embedded data set, print a "
        "comparison table, and write report.json, report.md and PNG figures.",
    )
    demo.add_argument(
        "--dataset",
        default="digits",
        choices=["digits", "synthetic", "cifar10", "cifar100", "svhn_cropped", "mnist"],
        help="embedded data (digits, synthetic) or a prepared tensorflow-datasets set",
    )
    demo.add_argument(
        "--architecture",
        default="mlp",
        choices=["mlp", "cnn", "resnet"],
        help="trunk before the LPC layer (cnn/resnet need image data: not synthetic)",
    )
    demo.add_argument(
        "--augment-noise",
        type=_nonnegative_float,
        default=0.1,
        metavar="SIGMA",
        help="Gaussian input noise in both arms during training (0 = off)",
    )
    demo.add_argument("--data-dir", default=None, help="tensorflow-datasets data folder")
    demo.add_argument(
        "--max-train", type=_positive_int, default=None, help="use at most N training examples"
    )
    demo.add_argument(
        "--max-test", type=_positive_int, default=None, help="use at most N test examples"
    )
    demo.add_argument("--epochs", type=_positive_int, default=60, help="epochs per model")
    demo.add_argument(
        "--seeds", type=_positive_int, default=2, help="seeds per arm (results: mean +- std)"
    )
    demo.add_argument(
        "--dim", type=_positive_int, default=16, help="latent dimension of the LPC layer"
    )
    demo.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="Keras backend; overrides KERAS_BACKEND (default: KERAS_BACKEND, else Keras' own)",
    )
    demo.add_argument("--out", default="lpc-demo", help="output folder")
    demo.add_argument(
        "--attack-samples", type=_positive_int, default=300, help="test inputs attacked"
    )
    demo.add_argument(
        "--certify",
        choices=("crown", "ibp", "lipschitz"),
        default="crown",
        help="the certified lower bound beside the verified distance",
    )
    demo.add_argument(
        "--certify-samples",
        type=_positive_int,
        default=None,
        help="attacked inputs also certified (default: all for the MLP, 20 for cnn/resnet "
        "with crown)",
    )
    demo.add_argument(
        "--quiet", action="store_true", help="print nothing; write the report files only"
    )
    parser.set_defaults(subparser=None)
    demo.set_defaults(subparser=demo)
    return parser


def select_backend(backend: str | None) -> str | None:
    """Make ``backend`` the Keras backend of this process; return the error, if any.

    Sets ``KERAS_BACKEND`` (which Keras reads when it is first imported),
    overriding the variable's value. Once Keras is imported its backend is
    fixed: a different one is an error (only when `main` runs inside a
    Python process that has already imported Keras).
    """
    if backend is None:
        return None
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        current = keras.backend.backend()
        if current != backend:
            return (
                f"--backend {backend} cannot be used: Keras is already imported in this "
                f"process with the {current} backend"
            )
        return None
    os.environ["KERAS_BACKEND"] = backend
    return None


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Drop TensorFlow/absl native start-up lines from stderr; pass everything else.

    Only when the user has not set ``TF_CPP_MIN_LOG_LEVEL`` (then it is set
    to 3, hiding TensorFlow's native info, warning and error logs) and stderr
    is a real file descriptor. File descriptor 2 goes through a pipe whose
    reader forwards every line except those matching `_NATIVE_NOISE`.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        sys.stderr.flush()
        target = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real stderr (captured, closed)
        yield
        return
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def pump() -> None:
        with os.fdopen(read, "rb") as source:
            for line in source:
                if not _NATIVE_NOISE.match(line.decode("utf-8", "replace")):
                    os.write(target, line)

    thread = threading.Thread(target=pump, name="keras-lpc-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(target, 2)  # closes the pipe's last write end: the reader ends
        thread.join(timeout=10)
        os.close(target)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        problem = select_backend(args.backend)
        if problem:
            args.subparser.error(problem)
        with quiet_native_logs():
            return _demo(args)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Import the demo (and with it Keras, on the chosen backend) and run it."""
    from keras_lpc.demo import DemoConfig, output_folder, run_demo

    try:
        config = DemoConfig(
            dataset=args.dataset,
            epochs=args.epochs,
            seeds=args.seeds,
            dim=args.dim,
            architecture=args.architecture,
            augment_noise=args.augment_noise,
            data_dir=args.data_dir,
            max_train=args.max_train,
            max_test=args.max_test,
            out=args.out,
            attack_samples=max(2, args.attack_samples),
            certify=args.certify,
            certify_samples=args.certify_samples,
            verbose=0 if args.quiet else 1,
        )
    except ValueError as err:  # flags valid alone but not together: usage error, exit 2
        args.subparser.error(str(err))
    try:
        output_folder(config.out)
    except ValueError as err:  # --out names a file, or a folder that cannot be made
        args.subparser.error(str(err))
    try:
        run_demo(config)
    except (FileNotFoundError, ImportError) as err:  # data not prepared, extra missing
        args.subparser.exit(1, f"keras-lpc demo: error: {err}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
