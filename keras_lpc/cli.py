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
    demo.add_argument("--dataset", default="digits", choices=["digits", "synthetic"])
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

        config = DemoConfig(
            dataset=args.dataset,
            epochs=args.epochs,
            seeds=args.seeds,
            dim=args.dim,
            out=args.out,
            attack_samples=max(2, args.attack_samples),
            verbose=0 if args.quiet else 1,
        )
        run_demo(config)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
