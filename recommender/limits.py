"""Fixed bounds of request parameters, declared once: the functions that enforce them and the
API's schema (api/routers) both read them from here, so the two cannot drift apart.

Bounds an operator configures (``rank.max_k``, ``server.max_text_chars``, ``server.max_batch``)
live in :class:`caselink.config.Settings` instead (see :func:`caselink.config.limited_by`).
"""

from __future__ import annotations

# GET /v1/emerging (recommender.emerging.find_emerging)
WINDOW_DAYS_MIN, WINDOW_DAYS_MAX = 1, 3660  # a day to ten years
MIN_GROUP_SIZE = 2  # a "burst" of one case is not a group

# Attribute filters (SearchQuery.attributes, attr=key=value): values asked for per key. The bounds
# of a record's attributes themselves are the record model's (indexing.records.MAX_ATTRIBUTES...).
MAX_ATTRIBUTE_FILTER_VALUES = 100
