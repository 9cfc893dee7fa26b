"""Shards: which matcher owns an instrument's book, and the id ranges each shard allocates from.

An instrument's shard is a stable hash of its token (crc32, the same in every process and
Python version). Each shard draws order ids and event sequence numbers (trade ids) from its
own range, ``[shard_id << 48, (shard_id + 1) << 48)``, so ids never collide across matchers
and a matcher can find where its counters stopped. ``ROLE=all`` is shard 0 of 1: it owns
every instrument and counts from 1, as a single process always did.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

_RANGE_BITS = 48
MAX_SHARDS = 1 << (63 - _RANGE_BITS)


def shard_of(instrument_token: int, shards: int) -> int:
    if shards <= 1:
        return 0
    return zlib.crc32(str(instrument_token).encode()) % shards


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: int = 0
    shards: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= MAX_SHARDS or not 0 <= self.shard_id < self.shards:
            raise ValueError(f"shard {self.shard_id} of {self.shards} is not valid")

    def owns(self, instrument_token: int) -> bool:
        return self.shards == 1 or shard_of(instrument_token, self.shards) == self.shard_id

    @property
    def id_base(self) -> int:
        """Ids of this shard are above ``id_base`` and below ``id_limit``."""
        return self.shard_id << _RANGE_BITS

    @property
    def id_limit(self) -> int:
        return (self.shard_id + 1) << _RANGE_BITS
