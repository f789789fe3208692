"""A ring server's pooled codes going back to the database in one transaction: at a
graceful stop, a handoff, or an idle extra's return (see :mod:`coder_ring.ring_server`)."""

from __future__ import annotations

import logging

from coder_ring.config import RingConfig
from coder_ring.errors import CoderRingError
from coder_ring.extra_pool import ExtraPool
from coder_ring.operations import GiveBack
from coder_ring.service import RingService

log = logging.getLogger("coder_ring.pool")


def give_pools_back(
    service: RingService, config: RingConfig, epoch: int, pools: list[ExtraPool]
) -> int:
    """Give the codes of ``pools`` back, fenced with ``epoch``; codes given back. What
    cannot go back (written since, or the database failing) is lost, never repeated."""
    returns = [
        GiveBack(pool.extra, values, pool.version)
        for pool in pools
        if (values := pool.returnable())
    ]
    if not returns:
        return 0
    try:
        # With the config the codes were drawn with: the rings file may have dropped or
        # changed the ring since (a handoff after a reload gives the pool back).
        returned = service.give_back_all(config, returns, epoch=epoch)
    except CoderRingError as error:
        log.warning("ring %s: cannot give codes back: %s", config.name, error)
        return 0
    refused = [back.extra for back, done in zip(returns, returned, strict=True) if not done]
    if refused:
        log.warning(
            "ring %s: pooled codes of extras %s not given back (written since): lost, "
            "never repeated",
            config.name,
            refused,
        )
    return sum(len(back.values) for back, done in zip(returns, returned, strict=True) if done)
