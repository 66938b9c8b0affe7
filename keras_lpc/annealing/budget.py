"""The default run's gamma: the default schedule and the largest gamma a run can follow."""

from __future__ import annotations

from keras_lpc._validation import check_float
from keras_lpc.annealing.schedules import Constant, GammaSchedule, Polynomial

__all__ = ["BUDGET_REFERENCE", "DEFAULT_MAXIMUM", "default_schedule", "gamma_budget"]

DEFAULT_MAXIMUM = 1e3
BUDGET_REFERENCE = 4.5  # learning rate x steps at which the budget is DEFAULT_MAXIMUM


def default_schedule(maximum: float = DEFAULT_MAXIMUM) -> GammaSchedule:
    """The schedule `GammaAnnealing()` uses when given none: ``Polynomial(0, maximum, power=2)``.

    A quadratic ramp from 0 to ``maximum`` (1e3 by default, the regime the
    papers study) over 1000 counts, which `GammaAnnealing()` stretches to
    end at 70 % of the run (``ramp_fraction``) and paces by the training
    (`keras_lpc.annealing.TrainingPace`). ``sqrt(gamma)`` then grows
    linearly, which is the pace at which Adam can grow the output layer (it
    must grow like ``sqrt(gamma)``). The earlier default,
    ``Geometric(1e-2, maximum)`` ending at half the run, asked for 44 % of
    that growth in the last tenth of the ramp and, over 3 seeds per backend,
    fell below the baseline's accuracy in 5 of 9 design-card runs (down to
    81 %); docs/recipe.md has both. `GammaAnnealing` lowers ``maximum`` to
    `gamma_budget` for runs too short to reach 1e3.

    Example:

    >>> default_schedule().stop, default_schedule(50.0).stop, default_schedule()(500)
    (1000.0, 50.0, 250.0)
    """
    maximum = check_float("maximum", maximum, minimum=0.0)
    if maximum <= 1e-2:
        return Constant(maximum)
    return Polynomial(0.0, maximum, steps=1000, power=2.0)


def gamma_budget(steps: int, learning_rate: float, multiplier: float = 1.0) -> float:
    """The largest gamma an Adam-type optimizer can follow in a run of ``steps`` steps.

    ```
    budget = 1e3 * (multiplier * learning_rate * steps / 4.5) ** 2
    ```

    Why: as gamma rises, the latents shrink like ``1 / sqrt(gamma)`` and the
    output layer's weights must grow like ``sqrt(gamma)`` to keep the logits.
    Adam, AdamW and their kin move a weight by about one learning rate per
    step, so in ``steps`` steps the output layer can grow by about
    ``multiplier * learning_rate * steps`` (``multiplier``: its learning-rate
    factor, see `keras_lpc.optimizers.with_lr_multipliers`), and gamma can
    follow the square of that. The constant is measured on digits
    (docs/recipe.md): 4,500 AdamW steps at 1e-3 follow a ramp to 1e3 at
    98 % accuracy, and a ramp to 3e3 fell to 75 %. Dimensionless.

    Args:
        steps: optimizer steps in the run (``epochs * steps_per_epoch``).
        learning_rate: the optimizer's (initial) learning rate.
        multiplier: learning-rate factor of the layer after the LPC layer.

    Example:

    >>> gamma_budget(4500, 1e-3), round(gamma_budget(675, 1e-3), 2)
    (1000.0, 22.5)
    >>> gamma_budget(675, 1e-3, multiplier=10.0)
    2250.0
    """
    steps = check_float("steps", steps, minimum=0.0)
    learning_rate = check_float("learning_rate", learning_rate, minimum=0.0)
    multiplier = check_float("multiplier", multiplier, strictly_positive=True)
    return float(DEFAULT_MAXIMUM * (multiplier * learning_rate * steps / BUDGET_REFERENCE) ** 2)
