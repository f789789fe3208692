"""The two tiers of the suite: ``make test`` (every property at its full example budget)
and ``make test-fast`` (the same tests, a fifth of the examples).

A Hypothesis profile per tier, registered and loaded by ``tests/conftest.py`` before any
test module is imported; ``CODER_RING_TEST_PROFILE`` picks one (``full`` when unset, so
a plain ``pytest`` is the full tier; ``make test-fast`` sets ``fast``). A test states
its full budget through :func:`examples`, which scales it by the loaded profile::

    @settings(max_examples=examples(300), deadline=None)

A property with no budget of its own gets the profile's ``max_examples``: 100
(Hypothesis's default) in full, 20 in fast. Examples that once failed are replayed from
Hypothesis's database in both tiers.
"""

from __future__ import annotations

import os

from hypothesis import settings

PROFILE_ENV = "CODER_RING_TEST_PROFILE"
FULL, FAST = "full", "fast"
#: Hypothesis's own default: a budget given to :func:`examples` is relative to it.
FULL_EXAMPLES = 100
#: The fast tier's default, and so its share of every budget (a fifth).
FAST_EXAMPLES = 20
#: The fewest examples :func:`examples` scales a budget down to.
FLOOR = 5


def load_profile() -> str:
    """Register both profiles and load the one ``CODER_RING_TEST_PROFILE`` names."""
    settings.register_profile(FULL, max_examples=FULL_EXAMPLES)
    settings.register_profile(FAST, max_examples=FAST_EXAMPLES)
    name = os.environ.get(PROFILE_ENV) or FULL
    settings.load_profile(name)  # InvalidArgument names the profiles for a typo
    return name


def examples(full: int) -> int:
    """``max_examples`` of a test whose budget in the full tier is ``full``: all of it
    under the full profile, scaled by the loaded profile otherwise (at least
    :data:`FLOOR`, never more than ``full``). Call it in the decorator: the profile
    is loaded before test modules are imported."""
    scaled = full * settings.default.max_examples // FULL_EXAMPLES
    return min(full, max(FLOOR, scaled))
