"""Joint one-candidate-per-blank assignment for chid (Hungarian algorithm, no SciPy).

In ChID every line of a file has one candidate list shared by all blanks of its
passages, and each candidate answers at most one of those blanks. Given the
model's score of every (blank, candidate) pair, :func:`assign_candidates` picks
the assignment with the largest total score in which no candidate is used twice
(the Hungarian / Kuhn-Munkres algorithm on the negated scores, O(n^2 m)). With
more blanks than candidates no such assignment exists: each blank then simply
takes its best-scoring candidate.
"""
from __future__ import annotations

from typing import List

import numpy as np

__all__ = ["min_cost_assignment", "assign_candidates"]


def min_cost_assignment(cost: np.ndarray) -> List[int]:
    """Rows-to-columns assignment of minimal total cost (each column used at most once).

    Args:
        cost: ``(n, m)`` finite costs with ``n <= m``.

    Returns:
        for each row, its column (``n`` distinct columns).
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError("cost must be a 2-D matrix, got shape %s" % (cost.shape,))
    n, m = cost.shape
    if n > m:
        raise ValueError("more rows (%d) than columns (%d): no complete assignment" % (n, m))
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost matrix has non-finite entries")
    if n == 0:
        return []
    # Shortest augmenting paths with potentials; index 0 is a dummy row/column.
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=int)  # owner[j]: row assigned to column j (1-based), 0 = free
    way = np.zeros(m + 1, dtype=int)
    for row in range(1, n + 1):
        owner[0] = row
        column = 0
        min_slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[column] = True
            current = owner[column]
            delta, next_column = np.inf, 0
            for j in range(1, m + 1):
                if used[j]:
                    continue
                slack = cost[current - 1, j - 1] - u[current] - v[j]
                if slack < min_slack[j]:
                    min_slack[j], way[j] = slack, column
                if min_slack[j] < delta:
                    delta, next_column = min_slack[j], j
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    min_slack[j] -= delta
            column = next_column
            if owner[column] == 0:
                break
        while column:
            previous = way[column]
            owner[column] = owner[previous]
            column = previous
    result = [0] * n
    for j in range(1, m + 1):
        if owner[j]:
            result[owner[j] - 1] = j - 1
    return result


def assign_candidates(scores: np.ndarray) -> List[int]:
    """Best joint choice of one candidate per blank.

    Args:
        scores: ``(blanks, candidates)`` scores, higher is better.

    Returns:
        the chosen candidate index of each blank: distinct candidates maximising
        the total score when ``blanks <= candidates``, else each blank's argmax.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError("scores must be a 2-D matrix, got shape %s" % (scores.shape,))
    blanks, candidates = scores.shape
    if blanks > candidates:
        return [int(i) for i in scores.argmax(axis=1)]
    return min_cost_assignment(-scores)
