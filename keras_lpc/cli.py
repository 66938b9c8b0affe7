"""The `keras-lpc` command."""

from __future__ import annotations

import argparse
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


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
        prog="keras-lpc", description="Latent Point Collapse for Keras 3."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
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
        help="Gaussian input noise in both arms during training (default 0.1; 0 = off)",
    )
    demo.add_argument("--data-dir", default=None, help="tensorflow-datasets data folder")
    demo.add_argument(
        "--max-train", type=_positive_int, default=None, help="use at most N training examples"
    )
    demo.add_argument(
        "--max-test", type=_positive_int, default=None, help="use at most N test examples"
    )
    demo.add_argument("--epochs", type=_positive_int, default=60)
    demo.add_argument("--seeds", type=_positive_int, default=2)
    demo.add_argument(
        "--dim", type=_positive_int, default=16, help="latent dimension of the LPC layer"
    )
    demo.add_argument(
        "--backend", choices=BACKENDS, default=None, help="Keras backend (default: KERAS_BACKEND)"
    )
    demo.add_argument("--out", default="lpc-demo", help="output folder (default: lpc-demo)")
    demo.add_argument(
        "--attack-samples", type=_positive_int, default=300, help="test inputs attacked"
    )
    demo.add_argument("--quiet", action="store_true")
    parser.set_defaults(subparser=None)
    demo.set_defaults(subparser=demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        if args.backend:
            if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") not in (
                None,
                args.backend,
            ):
                print("error: --backend must be chosen before Keras is imported", file=sys.stderr)
                return 2
            os.environ["KERAS_BACKEND"] = args.backend
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from keras_lpc.demo import DemoConfig, run_demo

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
                verbose=0 if args.quiet else 1,
            )
        except ValueError as err:  # flags valid alone but not together: usage error, exit 2
            args.subparser.error(str(err))
        try:
            run_demo(config)
        except (FileNotFoundError, ImportError) as err:  # data not prepared, extra missing
            args.subparser.exit(1, f"keras-lpc demo: error: {err}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
