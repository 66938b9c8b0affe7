"""Hypothesis strategies and checks shared by the property tests of `keras_lpc.metrics`.

Latents are drawn on a grid of quarters, so facts such as "two class means
coincide" or "a point sits on its class mean" hold exactly in the draw
rather than up to rounding.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

SETTINGS = settings(max_examples=25, deadline=None)
QUARTERS = st.integers(-16, 16).map(lambda v: v / 4.0)
SEEDS = st.integers(0, 2**32 - 1)


def assert_close(a, b, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Equal up to rounding; ``inf == inf`` and ``nan == nan``."""
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


@st.composite
def labelled(draw, max_d: int = 3, max_classes: int = 4, min_size: int = 1, max_size: int = 4):
    """Any valid ``(z, labels)``: quarters, duplicates allowed, class sizes >= ``min_size``."""
    d = draw(st.integers(1, max_d))
    sizes = draw(st.lists(st.integers(min_size, max_size), min_size=2, max_size=max_classes))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    z = draw(arrays(np.float64, (len(labels), d), elements=QUARTERS))
    return z, labels


@st.composite
def separated(draw, max_d: int = 3, max_classes: int = 4, max_size: int = 4, spread: bool = False):
    """``(z, labels)`` whose class means are distinct and differ from the global mean.

    Centres are distinct integer points; each sample moves from its centre
    by at most 1/4 per coordinate, so means stay at least 1/2 apart. With
    ``spread``, every class has two samples 1/2 apart (no class collapsed).
    """
    d = draw(st.integers(1, max_d))
    sizes = draw(
        st.lists(st.integers(2 if spread else 1, max_size), min_size=2, max_size=max_classes)
    )
    labels = np.repeat(np.arange(len(sizes)), sizes)
    centres = draw(arrays(np.float64, (len(sizes), d), elements=st.integers(-4, 4).map(float)))
    assume(len(np.unique(centres, axis=0)) == len(sizes))
    noise = draw(arrays(np.float64, (len(labels), d), elements=st.sampled_from([-0.25, 0, 0.25])))
    if spread:
        first = np.searchsorted(labels, np.arange(len(sizes)))
        noise[first, 0], noise[first + 1, 0] = 0.25, -0.25
    z = centres[labels] + noise
    means = np.array([z[labels == c].mean(axis=0) for c in range(len(sizes))])
    assume(np.all(np.linalg.norm(means - z.mean(axis=0), axis=1) > 1e-6))
    return z, labels


def similarity(seed: int, d: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A random rotation (or reflection) ``Q``, translation ``t`` and scale ``s``."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q, 10.0 * rng.normal(size=d), float(10.0 ** rng.uniform(-2, 2))


def rename(labels: np.ndarray, seed: int) -> np.ndarray:
    """Labels mapped one-to-one onto arbitrary (also negative, unsorted) class ids."""
    classes = np.unique(labels)
    new_ids = np.random.default_rng(seed).choice(np.arange(-50, 50), len(classes), replace=False)
    return new_ids[np.searchsorted(classes, labels)]
